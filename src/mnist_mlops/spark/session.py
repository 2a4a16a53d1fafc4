"""The SparkSession of a run: ``spark.yml``'s settings completed for TensorFlow executors, and
whether a run's nodes need one at all."""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from typing import Any

from kedro.pipeline import Pipeline

from mnist_mlops.runtime.quiet_log import tensorflow_environment
from mnist_mlops.spark.strategies import STRATEGIES

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
