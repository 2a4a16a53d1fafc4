"""Project hooks."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)


def spark_conf(settings: dict[str, Any]) -> dict[str, str]:
    """Complete ``spark.yml`` with what TensorFlow in a Spark executor needs.

    TensorFlow is already initialised when the runner calls the training function, so its
    thread pools are sized from the executor's environment: one thread per executor core,
    or workers sharing a machine oversubscribe it (0.25x the throughput, measured).
    """
    conf = {key: str(value) for key, value in settings.items()}
    cores = conf.get("spark.executor.cores", "1")
    conf.setdefault("spark.executorEnv.TF_NUM_INTRAOP_THREADS", cores)
    conf.setdefault("spark.executorEnv.TF_NUM_INTEROP_THREADS", cores)
    return conf


def start_spark(settings: dict[str, Any]) -> Any:
    """The SparkSession of ``spark.yml`` settings (completed by :func:`spark_conf`)."""
    from pyspark.sql import SparkSession

    # Executors start Python workers with the driver's interpreter (and so this venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkHooks:
    """Starts the SparkSession from ``spark.yml`` for pipelines with nodes tagged ``spark``."""

    def __init__(self) -> None:
        self._settings: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._settings = context.config_loader["spark"]

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline) -> None:
        if not any("spark" in n.tags for n in pipeline.nodes):
            return
        spark = start_spark(self._settings)
        spark.sparkContext.setLogLevel("WARN")
        logger.info("Spark session on %s", spark.sparkContext.master)


class WorkspaceHooks:
    """Binds each workspace's credentials to its own MLflow server (``globals.yml`` names the
    workspaces, ``credentials.yml`` holds their secrets), and bounds MLflow's HTTP retries."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook first calls the home workspace
    def after_context_created(self, context: KedroContext) -> None:
        from mnist_mlops.workspaces import auth

        workspaces = context.config_loader["globals"].get("workspaces", {})
        credentials = context.config_loader["credentials"]
        for workspace in workspaces.values():
            secrets = credentials.get(workspace["credentials"], {})
            for uri in (workspace["tracking_uri"], workspace.get("registry_uri")):
                if uri:
                    auth.bind(uri, secrets)
        # MLflow's defaults (7 retries, exponential backoff) hide a stopped store for minutes.
        for variable, value in context.config_loader["globals"].get("mlflow_http", {}).items():
            os.environ.setdefault(variable, str(value))
