"""Gate the champion, register it in the sandbox registry and push it to production."""

from mnist_mlops.pipelines.registration.pipeline import create_pipeline

__all__ = ["create_pipeline"]
