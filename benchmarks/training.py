"""Training benchmark: each strategy against a plain tf_keras ``fit`` of the same recipe, one run.

    .venv/bin/python benchmarks/training.py [--images 20000] [--epochs 2] [--repeats 3]
    .venv/bin/python benchmarks/training.py --seeds 42+43+44  # the default run's accuracy

Every configuration trains the default recipe (``conf/base/parameters_training.yml``: model,
global batch, schedule, augmentation), the baseline included: a plain ``fit`` on the same
augmented input pipeline in this process, without Spark or a strategy. Each configuration's
training is clocked from the end of its first batch to the end of its last, validation passes
left out (the same callback everywhere). Prints per configuration the medians of test accuracy,
wall time, start-up (call to first finished batch), steady images/s and its ratio to the
baseline. The distributed strategy runs on local Spark and on a two-worker standalone cluster
(one core each: the baseline's two cores).

``--seeds`` instead trains single_node (all 55,000 images and the default epochs unless
``--images``/``--epochs`` say otherwise), once per training seed, and prints the test accuracy
of each with their spread.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import ArrayBundle, ArrayBundleDataset, IDXDataset
from mnist_mlops.pipelines.data_prep.nodes import split_train_validation
from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters
from mnist_mlops.pipelines.training import nodes
from mnist_mlops.pipelines.training.fit import (
    evaluation_dataset,
    progress_callback,
    training_dataset,
)
from mnist_mlops.pipelines.training.model import STEPS_PER_EXECUTION, build_model
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.serving.process import free_port
from mnist_mlops.spark.cluster import Cluster
from mnist_mlops.spark.session import start_spark

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "baseline: plain fit"


def plain_fit(bundle: ArrayBundle, training: dict[str, Any]) -> dict[str, float]:
    """The baseline: tf_keras ``fit`` of the recipe in this process, nothing else."""
    import tensorflow as tf

    hyperparameters = training["hyperparameters"]
    started = time.time()
    tf.keras.utils.set_random_seed(hyperparameters["seed"])  # as fit_model does
    arrays = bundle.load()
    batch, epochs = hyperparameters["batch_size"], hyperparameters["epochs"]
    steps = len(arrays["train_images"]) // batch
    model = build_model(
        training["architecture"],
        hyperparameters,
        steps * epochs,
        STEPS_PER_EXECUTION,  # as fit_model does
        hyperparameters["precision"],  # build_model resolves auto
    )
    progress = progress_callback(epochs, rank=0)
    model.fit(
        training_dataset(arrays, hyperparameters),
        epochs=epochs,
        steps_per_epoch=steps,
        validation_data=evaluation_dataset(
            arrays["validation_images"], arrays["validation_labels"]
        ),
        callbacks=[progress],
        verbose=0,
    )
    returned = time.time()
    _, test_accuracy = model.evaluate(
        evaluation_dataset(arrays["test_images"], arrays["test_labels"]), verbose=0
    )
    clock = progress.clock
    return {
        "test_accuracy": test_accuracy,
        "wall_time_s": time.time() - started,
        "startup_s": clock.first_step_at - started,
        "teardown_s": returned - clock.ended_at,
        "images_per_s": clock.timed_steps * batch / clock.train_s,
    }


def model_input(images: int) -> ArrayBundle:
    """The pipeline's model input (5,000 validation images held out), ``images`` to train on."""
    raw = ROOT / "data" / "01_raw" / "mnist"
    mnist = {
        f"{split}_{kind}": IDXDataset(filepath=str(raw / f"{prefix}-{kind}-{idx}.gz")).load()
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for kind, idx in (("images", "idx3-ubyte"), ("labels", "idx1-ubyte"))
    }
    arrays = split_train_validation(
        mnist, DataPrepParameters(validation_images=5000, max_train_images=images, seed=42)
    )
    dataset = ArrayBundleDataset(filepath=str(Path(tempfile.mkdtemp()) / "mnist.npz"))
    dataset.save(arrays)
    return dataset.load()


def default_training() -> dict[str, Any]:
    """``params:training`` of the default run."""
    with open(ROOT / "conf" / "base" / "parameters_training.yml") as f:
        return yaml.safe_load(f)["training"]


def spark_session(master: str):
    settings = yaml.safe_load((ROOT / "conf" / "base" / "spark.yml").read_text())
    return start_spark({**settings, "spark.master": master})


class Runs:
    """Each configuration's measurements, printed as they come and tabulated at the end."""

    def __init__(self) -> None:
        self.runs: dict[str, list[dict[str, float]]] = {}

    def record(self, name: str, measure: Callable[[], Any]) -> None:
        result = measure()
        if isinstance(result, list):  # the custom strategy: one result per architecture
            (result,) = result
        metrics = result.metrics if hasattr(result, "metrics") else result
        self.runs.setdefault(name, []).append(metrics)
        print(
            f"{name}: test accuracy {100 * metrics['test_accuracy']:.2f}%, "
            f"{metrics['images_per_s']:.0f} images/s, start-up {metrics['startup_s']:.1f} s, "
            f"teardown {metrics['teardown_s']:.1f} s, wall {metrics['wall_time_s']:.1f} s",
            flush=True,
        )

    def table(self) -> str:
        """Medians per configuration (start-up: runs after the first; teardown: the longest)."""
        baseline = statistics.median(r["images_per_s"] for r in self.runs[BASELINE])
        lines = [
            f"{'configuration':32} {'test acc %':>10} {'wall s':>7} {'start-up s':>10} "
            f"{'teardown s':>10} {'images/s':>9} {'vs baseline':>11}"
        ]
        for name, results in self.runs.items():
            speed = statistics.median(r["images_per_s"] for r in results)
            accuracy = statistics.median(100 * r["test_accuracy"] for r in results)
            wall = statistics.median(r["wall_time_s"] for r in results)
            startup = statistics.median(r["startup_s"] for r in results[1:] or results)
            teardown = max(r["teardown_s"] for r in results)  # a tail shows in the worst run
            lines.append(
                f"{name:32} {accuracy:10.2f} {wall:7.1f} {startup:10.1f} {teardown:10.1f} "
                f"{speed:9.0f} "
                f"{speed / baseline:10.2f}x"
            )
        return "\n".join(lines)


def compare_strategies(images: int, epochs: int, repeats: int) -> None:
    """Every strategy and the baseline on local Spark, then distributed on a standalone cluster."""
    bundle, training = model_input(images), default_training()
    training["hyperparameters"]["epochs"] = epochs
    parameters = TrainingParameters.model_validate(training)
    runs = Runs()
    spark = spark_session("local[2]")
    for _ in range(repeats):
        runs.record(BASELINE, lambda: plain_fit(bundle, training))
        for strategy in ("single_node", "local", "distributed", "custom"):
            train = getattr(nodes, f"train_{strategy}")
            runs.record(strategy, lambda train=train: train(bundle, parameters))
    spark.stop()

    cluster = Cluster(
        state_dir=Path(tempfile.mkdtemp()) / "cluster", port=free_port(), webui_port=free_port()
    )
    cluster.up(workers=2, cores=1, memory="3g")
    try:
        spark = spark_session(cluster.master_url)
        for _ in range(repeats):
            runs.record(
                "distributed, standalone cluster",
                lambda: nodes.train_distributed(bundle, parameters),
            )
        spark.stop()
    finally:
        cluster.down()
    hyperparameters = training["hyperparameters"]
    print(
        f"\n{images or 55000} images, {epochs} epochs, global batch "
        f"{hyperparameters['batch_size']}, median of {repeats} (start-up: of runs 2-{repeats})"
    )
    print(runs.table())


def accuracy_over_seeds(seeds: list[int], images: int, epochs: int | None) -> None:
    """single_node once per training seed (the data split stays the default run's)."""
    bundle, training = model_input(images), default_training()
    training["strategies"] = ["single_node"]
    training["hyperparameters"]["epochs"] = epochs or training["hyperparameters"]["epochs"]
    accuracies = []
    for seed in seeds:
        training["hyperparameters"]["seed"] = seed
        result = nodes.train_single_node(bundle, TrainingParameters.model_validate(training))
        accuracies.append(100 * result.metrics["test_accuracy"])
        print(f"seed {seed}: test accuracy {accuracies[-1]:.2f}%", flush=True)
    print(
        f"\n{len(seeds)} seeds, {training['hyperparameters']['epochs']} epochs: test accuracy "
        f"mean {statistics.mean(accuracies):.2f}%, min {min(accuracies):.2f}%, "
        f"max {max(accuracies):.2f}%, spread {max(accuracies) - min(accuracies):.2f} points"
    )


@click.command()
@click.option("--images", type=int, help="training images: 20000, or with --seeds 0 (all)")
@click.option("--epochs", type=int, help="2, or with --seeds the default run's")
@click.option("--repeats", default=3, show_default=True)
@click.option("--seeds", default="", help="e.g. 42+43+44: the default run's accuracy per seed")
def main(images: int | None, epochs: int | None, repeats: int, seeds: str) -> None:
    if seeds:
        accuracy_over_seeds([int(seed) for seed in seeds.split("+")], images or 0, epochs)
    else:
        compare_strategies(20000 if images is None else images, epochs or 2, repeats)


if __name__ == "__main__":
    main()
