"""Validate the raw MNIST arrays and prepare the model input."""

from mnist_mlops.pipelines.data_prep.pipeline import create_pipeline

__all__ = ["create_pipeline"]
