"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from mnist_mlops.pipelines import deploy


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``__default__`` is the whole flow: data_prep, training, registration, then deploy of the
    version registration pushed (``deployment.enabled`` is false in conf/azure).
    """
    pipelines = find_pipelines(raise_errors=True)
    # `kedro run --pipeline X` makes Kedro find only X: the whole flow is built when it is asked.
    if {"data_prep", "training", "registration"} <= pipelines.keys():
        pipelines["__default__"] = (
            pipelines["data_prep"]
            + pipelines["training"]
            + pipelines["registration"]
            + deploy.create_pipeline(after_push=True)
        )
    return pipelines
