"""Project hooks."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.framework.hooks import MlflowHook
from pydantic import BaseModel

from mnist_mlops.parameters import Section, check_sections
from mnist_mlops.pipelines.training.result import STRATEGIES

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
    from mnist_mlops.pipelines.training.parameters import TrainingParameters

    models = (
        BatchPredictParameters,
        DataPrepParameters,
        DeploymentParameters,
        MonitoringParameters,
        RegistrationParameters,
        TrainingParameters,
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
