"""Validate the pushed model, describe it, stage it, infra-validate it and promote it."""

from mnist_mlops.pipelines.deploy.pipeline import create_pipeline

__all__ = ["create_pipeline"]
