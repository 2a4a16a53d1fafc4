"""Train the CNN in four Spark strategies, compare them and choose the champion."""

from mnist_mlops.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
