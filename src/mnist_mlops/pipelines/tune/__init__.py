"""Search the training recipe with Optuna, trials spread over Spark executors."""

from mnist_mlops.pipelines.tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
