"""Promote, roll back or keep waiting on a canary, from the evidence live traffic left."""

from mnist_mlops.pipelines.rollout.pipeline import create_pipeline

__all__ = ["create_pipeline"]
