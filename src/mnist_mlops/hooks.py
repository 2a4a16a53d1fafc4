"""Project hooks."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Collection
from typing import Any

import click
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol, DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.framework.hooks import MlflowHook
from pydantic import BaseModel

from mnist_mlops import run_summary
from mnist_mlops.parameters import Section, check_sections
from mnist_mlops.quiet_log import tensorflow_environment
from mnist_mlops.strategies import STRATEGIES

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


def needs_spark(pipeline: Pipeline, strategies: Collection[str]) -> bool:
    """Whether a node of ``pipeline`` needs a SparkSession: one tagged ``spark``, unless it is the
    node of a strategy (tagged with the strategy's name) left out of ``strategies``, which stands
    aside without Spark."""
    left_out = set(STRATEGIES) - set(strategies)
    return any("spark" in n.tags and not left_out & n.tags for n in pipeline.nodes)


class SparkHooks:
    """Starts the SparkSession from ``spark.yml`` when a node to run needs one (see
    :func:`needs_spark`)."""

    def __init__(self) -> None:
        self._settings: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._settings = context.config_loader["spark"]

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        # Strategy nodes are tagged with their strategy; only then is training's section read.
        strategy_nodes = any(set(STRATEGIES) & n.tags for n in pipeline.nodes)
        selected = catalog.load("params:training").strategies if strategy_nodes else []
        if not needs_spark(pipeline, selected):
            return
        spark = start_spark(self._settings)
        spark.sparkContext.setLogLevel("WARN")
        logger.info("Spark session on %s", spark.sparkContext.master)


class ParameterHooks:
    """Checks the parameters Kedro's validation leaves out, before any node runs.

    Kedro validates the ``params:<section>`` arguments of the selected pipelines' nodes (typed
    with a section model); this refuses unknown sections and validates the sections of the other
    pipelines too, so a typo in ``--params`` never passes silently.
    """

    @hook_impl
    def after_catalog_created(self, parameters: dict[str, Any]) -> None:
        check_sections(parameters["parameters"], section_models())


def section_models() -> dict[str, type[Section]]:
    """The model of every pipeline's parameter section, by section name.

    Listed here rather than found from the pipelines: ``kedro run --pipeline X`` loads only X.
    """
    from mnist_mlops.pipelines.batch_predict.parameters import BatchPredictParameters
    from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters
    from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
    from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters
    from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
    from mnist_mlops.pipelines.rollout.parameters import RolloutParameters
    from mnist_mlops.pipelines.training.parameters import TrainingParameters
    from mnist_mlops.pipelines.tune.parameters import TuningParameters

    models = (
        BatchPredictParameters,
        DataPrepParameters,
        DeploymentParameters,
        MonitoringParameters,
        RegistrationParameters,
        RolloutParameters,
        TrainingParameters,
        TuningParameters,
    )
    return {model.section: model for model in models}


class TypedParamsMlflowHook(MlflowHook):
    """kedro-mlflow's hook, logging typed parameters flattened as it logs dicts.

    kedro-mlflow flattens dict parameters (``training.hyperparameters.epochs``) but logs a
    pydantic model as one string: it gets each model as its dict. Registered in ``settings.py``
    in place of the plugin's own instance.
    """

    @hook_impl
    def before_node_run(
        self, node: Node, catalog: DataCatalog, inputs: dict[str, Any], is_async: bool
    ) -> None:
        inputs = {
            name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            for name, value in inputs.items()
        }
        super().before_node_run(node, catalog, inputs, is_async)


def _section(parameters: dict[str, Any], name: str) -> dict[str, Any]:
    """A parameter section as a dict: its model validated (see :mod:`mnist_mlops.parameters`),
    or as configured when no loaded pipeline reads it."""
    value = parameters.get(name, {})
    return value.model_dump() if isinstance(value, BaseModel) else dict(value)


class TensorFlowHooks:
    """Sets up TensorFlow's environment for the run before anything initialises TensorFlow."""

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        use_gpu = _section(context.params, "training").get("use_gpu", False)
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
        project = run_params.get("project_path") or os.getcwd()
        reports = {  # the path each dataset writes, as a user in the project folder types it
            what: os.path.relpath(str(dataset._describe()["filepath"]), project)
            for name, what in run_summary.REPORTS.items()
            if name in produced and (dataset := catalog.get(name)) is not None
        }
        names = run_params.get("pipeline_names") or ["__default__"]
        title = (
            f"Run summary: {', '.join(names)} "
            f"(env {run_params.get('env') or 'local'}), "
            f"{run_summary.duration(time.monotonic() - self._started)}"
        )
        batch = _batch_scores(catalog) if "batch_predictions" in produced else None
        text = run_summary.render(
            title, self._outputs, _section(self._params, "registration"), reports, batch, error
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
