"""Watch the served model: recent requests against the training data, and a retrain flag."""

from mnist_mlops.pipelines.monitor.pipeline import create_pipeline

__all__ = ["create_pipeline"]
