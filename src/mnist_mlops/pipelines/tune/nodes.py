"""Nodes of the tune pipeline: open the study, run its trials on Spark, summarise it."""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.datasets.study_storage_dataset import StudyStorage
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.pipelines.tune import scheduler
from mnist_mlops.pipelines.tune.parameters import TuningParameters
from mnist_mlops.pipelines.tune.study import StudyHandle, open_study
from mnist_mlops.pipelines.tune.tracking import TrialRuns

logger = logging.getLogger(__name__)

# fANOVA fits a forest to the completed trials: with fewer, every parameter comes out alike.
MIN_TRIALS_FOR_IMPORTANCES = 4


def open_tuning_study(tuning: TuningParameters, tuning_storage: StudyStorage) -> StudyHandle:
    """Create the study or resume it, before any trial: an unreachable storage or a study made
    with another search space stops the run here."""
    return open_study(tuning, tuning_storage)


def tune_recipe(
    model_input: ArrayBundle,
    training: TrainingParameters,
    tuning: TuningParameters,
    study: StudyHandle,
) -> pd.DataFrame:
    """Run trials on the Spark executors until ``tuning``'s budget is spent.

    Each trial trains ``training.hyperparameters`` with the sampled values in place, on the
    training and validation images only, and is logged as an MLflow run nested in this one.

    Returns:
        Every trial of the study, earlier runs' included (``this_run`` tells them apart).
    """
    import mlflow
    from pyspark.sql import SparkSession

    context = SparkSession.builder.getOrCreate().sparkContext
    parent = mlflow.active_run()  # kedro-mlflow's run of the pipeline
    minutes = tuning.budget_minutes
    driver = scheduler.Study(
        handle=study,
        tuning=tuning,
        recipe=training.hyperparameters,
        bundle=dataclasses.replace(model_input, names=scheduler.SEARCH_ARRAYS),
        runs=TrialRuns(parent.info.run_id if parent else None, tuning.study_name),
        budget=scheduler.Budget(
            tuning.n_trials, time.monotonic() + minutes * 60 if minutes else None
        ),
    )
    before = {t.number for t in driver.optuna_study.get_trials(deepcopy=False)}
    scheduler.run_trials(context, driver, tuning.trial_timeout_minutes * 60)
    trials = driver.optuna_study.trials_dataframe(
        attrs=("number", "value", "state", "duration", "params", "user_attrs")
    )
    trials["this_run"] = ~trials["number"].isin(before)
    return trials


def summarise_study(study: StudyHandle, trials: pd.DataFrame) -> dict[str, Any]:
    """The study's best trial, its parameters' importances and this run's counts."""
    optuna_study = study.load()
    this_run = trials[trials["this_run"]]
    summary: dict[str, Any] = {
        "study": study.name,
        "storage": study.storage.display,
        "objective": "validation accuracy after the last epoch (maximised)",
        "this_run": _counts(this_run),
        "study_trials": _counts(trials),
        "best": None,
        "importances": _importances(optuna_study),
    }
    try:
        best = optuna_study.best_trial
    except ValueError:  # no trial completed
        return summary
    summary["best"] = {
        "number": best.number,
        "val_accuracy": best.value,
        "params": best.params,
        "wall_s": best.user_attrs.get("wall_s"),
    }
    return summary


def _counts(trials: pd.DataFrame) -> dict[str, int]:
    states = trials["state"].value_counts() if len(trials) else pd.Series(dtype=int)
    return {
        "trials": len(trials),
        "complete": int(states.get("COMPLETE", 0)),
        "pruned": int(states.get("PRUNED", 0)),
        "failed": int(states.get("FAIL", 0)),
    }


def _importances(optuna_study: Any) -> dict[str, float]:
    """fANOVA importances; empty while too few trials completed to estimate them."""
    import optuna

    completed = optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < MIN_TRIALS_FOR_IMPORTANCES:
        return {}
    try:
        found = optuna.importance.get_param_importances(optuna_study)
    except (ValueError, RuntimeError) as exc:
        logger.info("No parameter importances yet: %s", exc)
        return {}
    return {name: round(float(value), 4) for name, value in found.items()}


def plot_tuning_history(study: StudyHandle, trials: pd.DataFrame) -> Figure:
    """Optuna's optimisation history: each trial's validation accuracy and the best so far."""
    from optuna.visualization.matplotlib import plot_optimization_history

    figure = _figure(plot_optimization_history, study.load())
    figure.axes[0].set_ylabel("validation accuracy, last epoch")
    return figure


def plot_param_importances(study: StudyHandle, summary: dict[str, Any]) -> Figure:
    """Optuna's parameter importances (an empty chart while there are none)."""
    from optuna.visualization.matplotlib import plot_param_importances as plot

    if not summary["importances"]:
        figure = Figure(figsize=(6, 2))
        figure.text(
            0.5, 0.5, f"Importances need {MIN_TRIALS_FOR_IMPORTANCES} completed trials", ha="center"
        )
        return figure
    return _figure(plot, study.load())


def _figure(plot: Any, optuna_study: Any) -> Figure:
    import matplotlib.pyplot as plt
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # the matplotlib backend's notice
        axes = plot(optuna_study)
    figure = axes.figure
    figure.set_layout_engine("constrained")
    plt.close(figure)  # saved by the catalog; pyplot need not keep it
    return figure
