"""Nodes of the batch_predict pipeline: an image table scored on Spark by the production model."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mnist_mlops.pipelines.batch_predict.parameters import BatchPredictParameters
from mnist_mlops.registry import version_with_alias
from mnist_mlops.reporting.run_summary import BatchScores
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)

# What the served pyfunc returns per image, as Spark sees it.
PREDICTION_TYPE = "digit long, probabilities array<double>"


def images_to_table(images: np.ndarray) -> pd.DataFrame:
    """Make a table of an image array: one row per image, its id and its 784 pixels (0-255).

    Raises:
        ValueError: when ``images`` is not an N x 28 x 28 array of 8-bit pixels.
    """
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"expected N x 28 x 28 uint8 images to score, got {images.shape} {images.dtype}"
        )
    return pd.DataFrame(
        {"id": np.arange(len(images), dtype=np.int64), "pixels": list(images.reshape(-1, 784))}
    )


def _prediction_udf(spark: Any, production: Workspace, model_uri: str) -> Any:
    """A Spark UDF scoring with the production workspace's model ``model_uri``."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="batch-predict-") as folder:
        # spark_udf copies the model into a folder of its own for the executors.
        return mlflow.pyfunc.spark_udf(
            spark,
            production.download(model_uri, folder),
            result_type=PREDICTION_TYPE,
            env_manager="local",
        )


def score_images(
    images: DataFrame, production: Workspace, batch_predict: BatchPredictParameters
) -> DataFrame:
    """Score every row of ``images`` (``id``, ``pixels``) with the model under the alias.

    The model is the servable pyfunc (ONNX Runtime, no TensorFlow) run by
    ``mlflow.pyfunc.spark_udf``: MLflow ships it to the executors, each Python worker loads it
    once and scores Arrow batches.

    Returns:
        ``id``, ``digit``, ``confidence``, the ten ``probabilities`` and ``model_version``.

    Raises:
        ValueError: when the table lacks a column, or no version holds the alias.
    """
    missing = {"id", "pixels"} - set(images.columns)
    if missing:
        raise ValueError(f"the image table has no column {sorted(missing)}: {images.columns}")
    name, alias = batch_predict.model_name, batch_predict.alias
    version = version_with_alias(production, name, alias)
    if version is None:
        raise ValueError(
            f"no version of {name!r} holds the alias {alias!r} in the {production.name} "
            "workspace: run `kedro run --pipeline deploy --env gcp` first"
        )
    logger.info("Scoring with models:/%s/%s (@%s) on Spark", name, version.version, alias)
    predict = _prediction_udf(images.sparkSession, production, f"models:/{name}/{version.version}")
    if batch_predict.partitions:
        images = images.repartition(batch_predict.partitions)
    scored = images.select("id", predict(F.struct("pixels")).alias("prediction"))
    return scored.select(
        "id",
        F.col("prediction.digit").alias("digit"),
        F.array_max("prediction.probabilities").alias("confidence"),
        F.col("prediction.probabilities").alias("probabilities"),
        F.lit(str(version.version)).alias("model_version"),
    )


def summarise_predictions(predictions: DataFrame) -> BatchScores:
    """What the saved predictions hold, aggregated where they are (Spark): for the run summary."""
    (row,) = predictions.agg(
        F.count("*").alias("images"),
        F.avg("confidence").alias("mean_confidence"),
        F.sum((F.col("confidence") < 0.5).cast("int")).alias("unsure"),
        F.sort_array(F.collect_set("model_version")).alias("versions"),
    ).collect()  # an aggregation without grouping: one row
    digits = {r["digit"]: r["count"] for r in predictions.groupBy("digit").count().collect()}
    return BatchScores(
        images=row["images"],
        versions=list(row["versions"]),
        mean_confidence=float(row["mean_confidence"] or 0.0),
        unsure=int(row["unsure"] or 0),
        digits=digits,
    )
