"""Nodes of the training pipeline: one per strategy, then comparison and champion."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.datasets.study_storage_dataset import StudyStorage
from mnist_mlops.pipelines.training.fit import FitOutcome, evaluation_dataset, fit_model
from mnist_mlops.pipelines.training.parameters import Hyperparameters, TrainingParameters
from mnist_mlops.pipelines.training.spark_runner import run_with_runner
from mnist_mlops.pipelines.tune.parameters import TuningParameters
from mnist_mlops.pipelines.tune.study import best_trial
from mnist_mlops.spark.strategies import SkippedStrategy, TrainingResult

logger = logging.getLogger(__name__)

Result = TrainingResult | SkippedStrategy
# What a strategy node returns: one result, or one per architecture (the custom strategy).
NodeResult = Result | list[Result]
# Trains a model from the hyperparameters and whether to use GPUs.
Launch = Callable[[dict[str, Any], bool], FitOutcome]


def use_gpu(requested: bool, distributed: bool) -> bool:
    """Whether training can use GPUs; says so and falls back to CPU when none is there.

    A distributed run needs Spark's GPU scheduling (``spark.task.resource.gpu.amount``), a
    driver-side run a GPU visible to TensorFlow.
    """
    if not requested:
        return False
    if distributed:
        from pyspark.sql import SparkSession

        conf = SparkSession.builder.getOrCreate().sparkContext.getConf()
        available = conf.contains("spark.task.resource.gpu.amount")
        missing = "Spark schedules no GPUs (spark.task.resource.gpu.amount is not set)"
    else:
        import tensorflow as tf

        available = bool(tf.config.list_physical_devices("GPU"))
        missing = "TensorFlow sees no GPU on this machine"
    if not available:
        logger.warning("training.use_gpu is true but %s: training on CPU instead", missing)
    return available


def choose_recipe(
    training: TrainingParameters, tuning: TuningParameters, tuning_storage: StudyStorage
) -> tuple[TrainingParameters, dict[str, Any]]:
    """The recipe the strategies train: ``training`` as configured (``training.recipe:
    default``), or with the best completed trial of ``tuning.study_name`` in place (``tuned``).

    A tuned trial sets the architecture (the first of ``architectures`` too, so the custom
    strategy trains it beside its comparisons) and the searched hyperparameters; the others
    (precision, seed, ...) stay the configured ones.

    Returns:
        The training parameters to train with, and what recipe they are (for the run summary
        and MLflow).

    Raises:
        StudyError: no such study, or no completed trial in it.
    """
    if training.recipe == "default":
        return training, {"recipe": "default"}
    trial = best_trial(tuning.study_name, tuning_storage)
    tuned = _with_trial_params(training, trial.params)
    logger.info(
        "Recipe: trial %d of study %s (validation accuracy %.4f): %s",
        trial.number,
        tuning.study_name,
        trial.value,
        trial.params,
    )
    return tuned, {
        "recipe": "tuned",
        "study": tuning.study_name,
        "storage": tuning_storage.display,
        "trial": trial.number,
        "val_accuracy": trial.value,
        "params": trial.params,
    }


def _with_trial_params(training: TrainingParameters, params: dict[str, Any]) -> TrainingParameters:
    """``training`` with a trial's architecture (first of ``architectures`` too) and
    hyperparameters in place."""
    searched = dict(params)
    architecture = searched.pop("architecture")
    hyperparameters = Hyperparameters.model_validate(
        {**training.hyperparameters.model_dump(), **searched}
    )
    architectures = [architecture, *(a for a in training.architectures[1:] if a != architecture)]
    return training.model_copy(
        update={
            "architecture": architecture,
            "architectures": architectures,
            "hyperparameters": hyperparameters,
        }
    )


def _selected(strategy: str, training: TrainingParameters) -> bool:
    if strategy in training.strategies:
        return True
    logger.info("Strategy %s is not in training.strategies: skipped", strategy)
    return False


def _train(
    strategy: str,
    model_input: ArrayBundle,
    training: TrainingParameters,
    launch: Launch,
    workers: int,
    architecture: str | None = None,
) -> Result:
    """Run ``launch`` if ``strategy`` is selected, then evaluate its model in the driver.

    ``architecture`` is the model ``launch`` trains; ``training.architecture`` when not given.
    """
    if not _selected(strategy, training):
        return SkippedStrategy(strategy)
    from mnist_mlops.pipelines.training.model import resolve_precision

    # A dict for fit_model and build_model: it travels to the Spark workers as it is.
    hyperparameters = training.hyperparameters.model_dump()
    architecture = architecture or training.architecture
    logger.info("Training %s with %s on %d worker(s)", architecture, strategy, workers)
    started_at = time.time()
    gpu = use_gpu(training.use_gpu, distributed=strategy in ("distributed", "custom"))
    # Resolved here, so that every worker computes alike and the run's params say which.
    hyperparameters["precision"] = resolve_precision(hyperparameters["precision"], gpu)
    outcome = launch(hyperparameters, gpu)
    returned_at = time.time()
    model = _driver_model(architecture, hyperparameters, outcome.weights)
    metrics = _evaluate(model, model_input.load())
    metrics |= _timings(outcome, started_at, returned_at, hyperparameters["batch_size"])
    _log_result(strategy, architecture, metrics)
    return TrainingResult(
        strategy=strategy,
        architecture=architecture,
        model=model,
        history=outcome.history,
        metrics=metrics,
        params=_run_params(hyperparameters, strategy, architecture, training, workers, gpu),
        worker_pids=outcome.worker_pids,
    )


def _driver_model(architecture: str, hyperparameters: dict[str, Any], weights: list[np.ndarray]):
    """The trained weights in a model of the driver's own, compiled to predict (one step per
    execution: see ``STEPS_PER_EXECUTION``)."""
    from mnist_mlops.pipelines.training.model import build_model

    model = build_model(architecture, hyperparameters, total_steps=1)
    model.set_weights(weights)
    return model


def _log_result(strategy: str, architecture: str, metrics: dict[str, float]) -> None:
    logger.info(
        "%s/%s: test accuracy %.4f, %.0f images/s, %.1f s in all",
        strategy,
        architecture,
        metrics["test_accuracy"],
        metrics["images_per_s"],
        metrics["wall_time_s"],
    )


def _run_params(
    hyperparameters: dict[str, Any],
    strategy: str,
    architecture: str,
    training: TrainingParameters,
    workers: int,
    gpu: bool,
) -> dict[str, Any]:
    """The run's parameters for MLflow: the hyperparameters trained with and how."""
    return {
        **hyperparameters,
        "strategy": strategy,
        "architecture": architecture,
        "recipe": training.recipe,
        "workers": workers,
        "device": "GPU" if gpu else "CPU",
    }


def _evaluate(model, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """The trained model's validation accuracy, test accuracy and test loss, in the driver."""
    _, validation_accuracy = model.evaluate(
        evaluation_dataset(arrays["validation_images"], arrays["validation_labels"]), verbose=0
    )
    test_loss, test_accuracy = model.evaluate(
        evaluation_dataset(arrays["test_images"], arrays["test_labels"]), verbose=0
    )
    return {
        "validation_accuracy": float(validation_accuracy),
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
    }


def _timings(
    outcome: FitOutcome, started_at: float, returned_at: float, global_batch: int
) -> dict[str, float]:
    """Where a strategy's time went, from its call (``started_at``) to now (evaluation done)."""
    clock = outcome.clock
    return {
        "wall_time_s": time.time() - started_at,
        # The first step carries graph tracing and worker start-up: it counts as start-up.
        "startup_s": clock.first_step_at - started_at,
        "train_s": clock.train_s,
        "validation_s": clock.validation_s,
        # From the end of the last epoch until the driver holds the weights: fit returning,
        # the workers' pid gather, and (distributed) the Spark job finishing.
        "teardown_s": returned_at - clock.ended_at,
        "images_per_s": clock.timed_steps * global_batch / max(clock.train_s, 1e-9),
    }


def train_single_node(model_input: ArrayBundle, training: TrainingParameters) -> Result:
    """Train with a plain tf_keras ``fit`` in the driver process."""
    return _train(
        "single_node",
        model_input,
        training,
        lambda hp, gpu: fit_model(model_input, hp, training.architecture),
        workers=1,
    )


def train_local(model_input: ArrayBundle, training: TrainingParameters) -> Result:
    """Train with ``MirroredStrategyRunner(local_mode=True)``: one slot, in the driver."""
    launch = _runner_launch(model_input, training, training.architecture, 1, local_mode=True)
    return _train("local", model_input, training, launch, workers=1)


def train_distributed(model_input: ArrayBundle, training: TrainingParameters) -> Result:
    """Train with ``MirroredStrategyRunner(local_mode=False)`` on ``num_slots`` Spark tasks."""
    slots = training.distributed.num_slots
    launch = _runner_launch(model_input, training, training.architecture, slots)
    return _train("distributed", model_input, training, launch, workers=slots)


def train_custom(model_input: ArrayBundle, training: TrainingParameters) -> list[Result]:
    """Train with ``custom_strategy=True``: each task builds its own
    ``MultiWorkerMirroredStrategy`` with the configured collective communication.

    Trains each of ``training.architectures`` in turn, so the comparison shows them side by side.

    Returns:
        One result per architecture, in the configured order (one skip when not selected).
    """
    custom = training.custom
    if not _selected("custom", training):
        return [SkippedStrategy("custom")]
    return [
        _train(
            "custom",
            model_input,
            training,
            _runner_launch(
                model_input, training, architecture, custom.num_slots, custom.communication
            ),
            workers=custom.num_slots,
            architecture=architecture,
        )
        for architecture in training.architectures
    ]


def _runner_launch(
    model_input: ArrayBundle,
    training: TrainingParameters,
    architecture: str,
    num_slots: int,
    communication: str | None = None,
    local_mode: bool = False,
) -> Launch:
    """``fit_model`` run by ``MirroredStrategyRunner`` on ``num_slots`` tasks; given a
    ``communication``, each task builds its own strategy using it (``custom_strategy``)."""
    return lambda hp, gpu: run_with_runner(
        fit_model,
        num_slots=num_slots,
        local_mode=local_mode,
        use_gpu=gpu,
        custom_strategy=communication is not None,
        # The runner only times distributed runs: local mode ignores it.
        timeout_s=training.timeout_s,
        bundle=model_input,
        hyperparameters=hp,
        architecture=architecture,
        communication=communication,
    )


def _trained(results: tuple[NodeResult, ...]) -> list[TrainingResult]:
    """The trained results of every strategy node, lists (one per architecture) flattened."""
    flat = [r for result in results for r in (result if isinstance(result, list) else [result])]
    trained = [r for r in flat if isinstance(r, TrainingResult)]
    if not trained:
        raise ValueError("No strategy was trained: check training.strategies")
    return trained


def compare_strategies(*results: NodeResult) -> pd.DataFrame:
    """Tabulate efficacy and efficiency of every trained strategy and architecture, one row each.

    Speed-up is images per second against ``single_node`` (empty when it did not run).
    """
    trained = _trained(results)
    baseline = next(
        (r.metrics["images_per_s"] for r in trained if r.strategy == "single_node"), np.nan
    )
    rows = [
        {
            "strategy": r.strategy,
            "architecture": r.architecture,
            "workers": r.params["workers"],
            "device": r.params["device"],
            "validation_accuracy": r.metrics["validation_accuracy"],
            "test_accuracy": r.metrics["test_accuracy"],
            "test_loss": r.metrics["test_loss"],
            "wall_time_s": r.metrics["wall_time_s"],
            "startup_s": r.metrics["startup_s"],
            "train_s": r.metrics["train_s"],
            "validation_s": r.metrics["validation_s"],
            "teardown_s": r.metrics["teardown_s"],
            "images_per_s": r.metrics["images_per_s"],
            # A run too short to time (all its steps in the first execution) has no baseline.
            "speedup_vs_single_node": r.metrics["images_per_s"] / baseline if baseline else np.nan,
        }
        for r in trained
    ]
    comparison = pd.DataFrame(rows)
    logger.info("Strategy comparison:\n%s", comparison.round(4).to_string(index=False))
    return comparison


def plot_strategy_comparison(*results: NodeResult) -> Figure:
    """Draw validation accuracy per epoch, test accuracy and training throughput of each result.

    Each result is labelled ``strategy/architecture`` (e.g. ``custom/original_cnn``).
    """
    trained = _trained(results)
    labels = [r.label for r in trained]
    figure = Figure(figsize=(15, 4), layout="constrained")
    curves, accuracy, throughput = figure.subplots(1, 3)
    for r in trained:
        epochs = range(1, len(r.history["val_accuracy"]) + 1)
        curves.plot(epochs, r.history["val_accuracy"], marker="o", label=r.label)
    curves.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    curves.legend()
    test_percent = [100 * r.metrics["test_accuracy"] for r in trained]
    bars = accuracy.bar(labels, test_percent, color="C2")
    accuracy.bar_label(bars, fmt="%.2f")
    # Strategies differ by tenths of a point: a zero-based axis would hide it.
    accuracy.set_ylim(min(test_percent) - 0.5, min(max(test_percent) + 0.25, 100))
    accuracy.set(title="Test accuracy", ylabel="% of the MNIST test set")
    throughput.bar(labels, [r.metrics["images_per_s"] for r in trained], color="C1")
    throughput.set(title="Training throughput (training batches only)", ylabel="images / s")
    for axes in (accuracy, throughput):  # "custom/original_cnn" and the like: long
        for label in axes.get_xticklabels():
            label.set(rotation=30, horizontalalignment="right", rotation_mode="anchor")
    return figure


def select_champion(*results: NodeResult) -> tuple[Any, dict[str, Any]]:
    """Pick the best validation accuracy, then the highest throughput among equals.

    Every trained result competes, each custom architecture included.

    Returns:
        The champion's model and a summary (strategy, MLflow run, parameters, metrics).
    """
    trained = _trained(results)
    champion = max(
        trained,
        key=lambda r: (round(r.metrics["validation_accuracy"], 4), r.metrics["images_per_s"]),
    )
    logger.info(
        "Champion: %s (validation accuracy %.4f, test accuracy %.4f)",
        champion.label,
        champion.metrics["validation_accuracy"],
        champion.metrics["test_accuracy"],
    )
    summary = {
        "strategy": champion.strategy,
        "architecture": champion.architecture,
        "run_id": champion.run_id,
        "params": champion.params,
        "metrics": champion.metrics,
    }
    return champion.model, summary
