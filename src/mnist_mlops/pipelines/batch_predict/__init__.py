"""Score a table of images with the production model on Spark."""

from mnist_mlops.pipelines.batch_predict.pipeline import create_pipeline

__all__ = ["create_pipeline"]
