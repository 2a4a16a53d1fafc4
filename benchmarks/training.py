"""Training benchmark: each strategy against a plain tf_keras ``fit`` in one process, one run.

    .venv/bin/python benchmarks/training.py [--images 20000] [--epochs 2] [--repeats 3]

Same model, data, global batch and epochs everywhere. Prints, per configuration, the median
images/s after the first step, the start-up overhead (call to first finished step) and the ratio
of images/s to the baseline; the distributed strategy runs on local Spark and on a two-worker
standalone cluster (one core each).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import ArrayBundleDataset, IDXDataset
from mnist_mlops.hooks import start_spark
from mnist_mlops.pipelines.data_prep.nodes import split_train_validation
from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters
from mnist_mlops.pipelines.training import nodes
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.serving.process import free_port
from mnist_mlops.spark_cluster import Cluster

ROOT = Path(__file__).resolve().parents[1]


def plain_fit(arrays: dict, hyperparameters: dict, architecture: str) -> dict[str, float]:
    """The baseline: tf_keras ``fit`` on in-memory arrays, nothing else."""
    import tensorflow as tf

    steps = len(arrays["train_images"]) // hyperparameters["batch_size"]
    started = time.time()
    model = build_model(architecture, hyperparameters, steps * hyperparameters["epochs"])
    first_step = []

    class FirstStep(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if not first_step:
                first_step.append(time.time())

    model.fit(
        arrays["train_images"].astype("float32"),
        arrays["train_labels"],
        batch_size=hyperparameters["batch_size"],
        epochs=hyperparameters["epochs"],
        validation_data=(
            arrays["validation_images"].astype("float32"),
            arrays["validation_labels"],
        ),
        callbacks=[FirstStep()],
        verbose=0,
    )
    images = steps * hyperparameters["batch_size"] * hyperparameters["epochs"]
    return {
        "images_per_s": (images - hyperparameters["batch_size"]) / (time.time() - first_step[0]),
        "startup_s": first_step[0] - started,
    }


def spark_session(master: str):
    settings = yaml.safe_load((ROOT / "conf" / "base" / "spark.yml").read_text())
    return start_spark({**settings, "spark.master": master})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    raw = ROOT / "data" / "01_raw" / "mnist"
    mnist = {
        f"{split}_{kind}": IDXDataset(filepath=str(raw / f"{prefix}-{kind}-{idx}.gz")).load()
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for kind, idx in (("images", "idx3-ubyte"), ("labels", "idx1-ubyte"))
    }
    arrays = split_train_validation(
        mnist, DataPrepParameters(validation_images=5000, max_train_images=args.images, seed=42)
    )
    dataset = ArrayBundleDataset(filepath=str(Path(tempfile.mkdtemp()) / "mnist.npz"))
    dataset.save(arrays)
    bundle = dataset.load()
    training = yaml.safe_load((ROOT / "conf" / "base" / "parameters_training.yml").read_text())
    training = training["training"]
    training["hyperparameters"]["epochs"] = args.epochs
    hyperparameters = training["hyperparameters"]
    training = TrainingParameters.model_validate(training)

    runs: dict[str, list[dict[str, float]]] = {}

    def record(name: str, measure) -> None:
        result = measure()
        if isinstance(result, list):  # the custom strategy: one result per architecture
            (result,) = result
        metrics = result.metrics if hasattr(result, "metrics") else result
        runs.setdefault(name, []).append(metrics)
        speed, startup = metrics["images_per_s"], metrics["startup_s"]
        print(f"{name}: {speed:.0f} images/s, start-up {startup:.1f} s", flush=True)

    spark = spark_session("local[2]")
    for _ in range(args.repeats):
        record("baseline: plain fit", lambda: plain_fit(arrays, hyperparameters, "lean_cnn"))
        for strategy in ("single_node", "local", "distributed", "custom"):
            train = getattr(nodes, f"train_{strategy}")
            record(strategy, lambda train=train: train(bundle, training))
    spark.stop()

    cluster = Cluster(
        state_dir=Path(tempfile.mkdtemp()) / "cluster", port=free_port(), webui_port=free_port()
    )
    cluster.up(workers=2, cores=1, memory="3g")
    try:
        spark = spark_session(cluster.master_url)
        for _ in range(args.repeats):
            record(
                "distributed, standalone cluster", lambda: nodes.train_distributed(bundle, training)
            )
        spark.stop()
    finally:
        cluster.down()

    baseline = statistics.median(r["images_per_s"] for r in runs["baseline: plain fit"])
    print(f"\n{args.images} images, {args.epochs} epochs, global batch "
          f"{hyperparameters['batch_size']}, median of {args.repeats}")  # fmt: skip
    print(f"{'configuration':34} {'images/s':>9} {'start-up s':>11} {'vs baseline':>12}")
    for name, results in runs.items():
        speed = statistics.median(r["images_per_s"] for r in results)
        startup = statistics.median(r["startup_s"] for r in results)
        print(f"{name:34} {speed:9.0f} {startup:11.1f} {speed / baseline:11.2f}x")


if __name__ == "__main__":
    main()
