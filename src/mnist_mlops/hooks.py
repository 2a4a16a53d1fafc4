"""Project hooks."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import click
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol, DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.framework.hooks import MlflowHook
from pydantic import BaseModel

from mnist_mlops.config.parameters import check_sections, section_values
from mnist_mlops.pipelines import section_models
from mnist_mlops.reporting import run_summary
from mnist_mlops.runtime.quiet_log import tensorflow_environment
from mnist_mlops.spark.session import needs_spark, start_spark
from mnist_mlops.spark.strategies import STRATEGIES

logger = logging.getLogger(__name__)


class SparkHooks:
    """Starts the SparkSession from ``spark.yml`` when a node to run needs one (see
    :func:`~mnist_mlops.spark.session.needs_spark`)."""

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


class TensorFlowHooks:
    """Sets up TensorFlow's environment for the run before anything initialises TensorFlow."""

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        use_gpu = section_values(context.params, "training").get("use_gpu", False)
        for variable, value in tensorflow_environment(use_gpu).items():
            os.environ.setdefault(variable, value)  # what the user set wins


class RunSummaryHooks:
    """Ends every run that trains, registers, deploys, monitors or scores with a summary.

    Printed, written to ``run_summary`` (``data/08_reporting/run_summary.md``, the latest run) and
    logged to the run's MLflow run: only the parts the run had (see
    :mod:`mnist_mlops.reporting.run_summary`).
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._report_files: dict[str, str] = {}
        self._outputs: dict[str, Any] = {}
        self._started = 0.0

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._params = context.params
        catalog = context.config_loader["catalog"]
        self._report_files = run_summary.report_files(catalog, context.project_path)

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
            what: self._report_files[name]
            for name, what in run_summary.REPORTS.items()
            if name in produced and name in self._report_files
        }
        names = run_params.get("pipeline_names") or ["__default__"]
        title = (
            f"Run summary: {', '.join(names)} "
            f"(env {run_params.get('env') or 'local'}), "
            f"{run_summary.duration(time.monotonic() - self._started)}"
        )
        registration = section_values(self._params, "registration")
        text = run_summary.render(title, self._outputs, registration, reports, error)
        if text:
            catalog.save("run_summary", text)
            click.echo("\n" + text)


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
