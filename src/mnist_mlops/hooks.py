"""Project hooks."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import click
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline

from mnist_mlops import run_summary
from mnist_mlops.quiet_log import tensorflow_environment

logger = logging.getLogger(__name__)

TENSORFLOW_VARIABLES = tuple(tensorflow_environment(use_gpu=False))


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
    # Executors run TensorFlow as the driver does (log level; CPU only unless training.use_gpu).
    for variable in TENSORFLOW_VARIABLES:
        if variable in os.environ:
            conf.setdefault(f"spark.executorEnv.{variable}", os.environ[variable])
    return conf


def start_spark(settings: dict[str, Any]) -> Any:
    """The SparkSession of ``spark.yml`` settings (completed by :func:`spark_conf`)."""
    from pyspark.sql import SparkSession

    # Executors start Python workers with the driver's interpreter (and so this venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = spark_conf(settings)
    if conf.get("spark.master", "local").startswith("local"):
        # A local master serves this machine only: bind to loopback (and stop Spark warning
        # that the hostname resolves to it on machines where it does).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in conf.items():
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


class TensorFlowHooks:
    """Sets up TensorFlow's environment for the run before anything initialises TensorFlow."""

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        use_gpu = context.params.get("training", {}).get("use_gpu", False)
        for variable, value in tensorflow_environment(use_gpu).items():
            os.environ.setdefault(variable, value)  # what the user set wins


class RunSummaryHooks:
    """Ends every run that trains, registers, deploys, monitors or scores with a summary.

    Printed, written to ``run_summary`` (``data/08_reporting/run_summary.md``, the latest run) and
    logged to the run's MLflow run: only the parts the run had (see :mod:`mnist_mlops.run_summary`).
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._outputs: dict[str, Any] = {}
        self._started = 0.0

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._outputs, self._started = {}, time.monotonic()

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        self._outputs.update({k: v for k, v in outputs.items() if k in run_summary.SUMMARISED})

    # First: kedro-mlflow's after_pipeline_run ends the MLflow run the summary is logged to.
    @hook_impl(tryfirst=True)
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        self._summarise(run_params, pipeline, catalog)

    # A run stopped by a rejected candidate still says what it trained and why it stopped.
    @hook_impl(tryfirst=True)
    def on_pipeline_error(
        self,
        error: Exception,
        run_params: dict[str, Any],
        pipeline: Pipeline,
        catalog: CatalogProtocol,
    ) -> None:
        self._summarise(run_params, pipeline, catalog, error)

    def _summarise(
        self,
        run_params: dict[str, Any],
        pipeline: Pipeline,
        catalog: CatalogProtocol,
        error: Exception | None = None,
    ) -> None:
        produced = pipeline.all_outputs() if error is None else set()
        reports = {
            what: str(catalog.get(name)._describe()["filepath"])
            for name, what in run_summary.REPORTS.items()
            if name in produced
        }
        names = run_params.get("pipeline_names") or ["__default__"]
        title = (
            f"Run summary: {', '.join(names)} "
            f"(env {run_params.get('env') or 'local'}), "
            f"{run_summary.duration(time.monotonic() - self._started)}"
        )
        batch = _batch_scores(catalog) if "batch_predictions" in produced else None
        text = run_summary.render(
            title, self._outputs, self._params.get("registration", {}), reports, batch, error
        )
        if text:
            catalog.save("run_summary", text)
            click.echo("\n" + text)


def _batch_scores(catalog: CatalogProtocol) -> run_summary.BatchScores:
    """Aggregate the saved batch predictions where they are: in Spark."""
    from pyspark.sql import functions as F

    predictions = catalog.load("batch_predictions")
    row = predictions.agg(
        F.count("*").alias("images"),
        F.avg("confidence").alias("mean_confidence"),
        F.sum((F.col("confidence") < 0.5).cast("int")).alias("unsure"),
        F.sort_array(F.collect_set("model_version")).alias("versions"),
    ).first()
    digits = {r["digit"]: r["count"] for r in predictions.groupBy("digit").count().collect()}
    return run_summary.BatchScores(
        images=row["images"],
        versions=list(row["versions"]),
        mean_confidence=float(row["mean_confidence"] or 0.0),
        unsure=int(row["unsure"] or 0),
        digits=digits,
    )


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
