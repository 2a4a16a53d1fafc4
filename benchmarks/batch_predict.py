"""Batch scoring benchmark: the 10,000 MNIST test images scored by the batch_predict node on
local Spark, against the same pyfunc model called in one process; one run.

    .venv/bin/python benchmarks/batch_predict.py [--repeats 5] [--master 'local[*]']

Prints the median seconds and images/s of each, with the ratio to the one-process baseline.
The Spark figure is the whole node (model lookup, spark_udf, the job writing parquet); the
first Spark run, which starts the Python workers, is reported apart as the cold run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import mlflow
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import IDXDataset
from mnist_mlops.pipelines.batch_predict.nodes import images_to_table, score_images
from mnist_mlops.pipelines.batch_predict.parameters import BatchPredictParameters
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.pyfunc import log_servable_model
from mnist_mlops.spark.session import start_spark
from mnist_mlops.workspaces import Workspace

ROOT = Path(__file__).resolve().parents[1]
NAME = "mnist-cnn"


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


@click.command()
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--master", default="local[*]", show_default=True, help="Spark master URL.")
def main(repeats: int, master: str) -> None:
    """Score the MNIST test images with batch_predict on Spark and with the pyfunc alone."""
    images = IDXDataset(filepath=str(ROOT / "data/01_raw/mnist/t10k-images-idx3-ubyte.gz")).load()

    with tempfile.TemporaryDirectory() as tmp:
        production = Workspace(name="production", tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        pyfunc = production_model(production)
        pixels = images.astype("float32")
        pyfunc.predict(pixels[:64])  # warm-up
        baseline = [timed(lambda: pyfunc.predict(pixels)) for _ in range(repeats)]

        settings = yaml.safe_load((ROOT / "conf/base/spark.yml").read_text())
        settings.update({"spark.master": master, "spark.app.name": "batch-benchmark"})
        spark = start_spark(settings)
        spark.sparkContext.setLogLevel("ERROR")
        images_to_table(images).to_parquet(f"{tmp}/table.parquet")
        table = spark.read.parquet(f"{tmp}/table.parquet")
        params = BatchPredictParameters(model_name=NAME, alias="production", partitions=0)

        def spark_run() -> None:
            scored = score_images(table, production, params)
            scored.write.mode("overwrite").parquet(f"{tmp}/predictions.parquet")

        cold = timed(spark_run)
        warm = [timed(spark_run) for _ in range(repeats)]
        rows = spark.read.parquet(f"{tmp}/predictions.parquet").count()
        spark.stop()
    if rows != len(images):
        raise SystemExit(f"Spark wrote {rows} predictions for {len(images)} images")

    print(f"{len(images)} images, median of {repeats}; Spark master {master}")
    print_ratios(len(images), statistics.median(baseline), statistics.median(warm), cold)


def production_model(production: Workspace) -> Any:
    """A fresh lean CNN registered as ``NAME`` with the alias ``production``, as a pyfunc."""
    hyperparameters = yaml.safe_load((ROOT / "conf/base/parameters_training.yml").read_text())
    model = build_model("lean_cnn", hyperparameters["training"]["hyperparameters"], 1)
    mlflow.set_tracking_uri(production.tracking_uri)
    with production.session() as client:
        mlflow.set_experiment("batch-benchmark")
        with mlflow.start_run():
            info = log_servable_model(model, registered_model_name=NAME)
        client.set_registered_model_alias(NAME, "production", info.registered_model_version)
        return mlflow.pyfunc.load_model(f"models:/{NAME}@production")


def print_ratios(images: int, base: float, warm: float, cold: float) -> None:
    """Seconds, images/s and the ratio to the one-process baseline, one line each."""
    print(f"{'':34} {'seconds':>8} {'images/s':>9} {'ratio':>6}")
    for label, seconds in (
        ("pyfunc.predict, one process", base),
        ("batch_predict node on Spark", warm),
        ("  the same, cold (first run)", cold),
    ):
        print(f"{label:34} {seconds:8.2f} {images / seconds:9.0f} {base / seconds:5.2f}x")


if __name__ == "__main__":
    main()
