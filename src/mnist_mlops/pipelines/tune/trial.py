"""One trial, as a Spark task runs it: train the sampled recipe, report each epoch, prune."""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.pipelines.tune.study import OBJECTIVE, StudyHandle

State = Literal["complete", "pruned", "failed"]


@dataclass(frozen=True)
class TrialTask:
    """What the driver sends a Spark task: the trial to run and everything it trains on."""

    study: StudyHandle
    trial_id: int
    number: int
    bundle: ArrayBundle  # the training and validation arrays only
    architecture: str
    hyperparameters: dict[str, Any]


@dataclass
class TrialOutcome:
    """What the task returns to the driver, which tells the study and tracks it."""

    state: State
    host: str
    pid: int
    threads: str  # TF_NUM_INTRAOP_THREADS of the process: the slot's cores
    fit_s: float = 0.0  # inside fit_model: model, data, epochs
    cpu_s: float = 0.0  # the process's CPU time meanwhile: fit_s / cpu_s shows contention
    history: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""


def run_trial(task: TrialTask) -> TrialOutcome:
    """Train ``task``'s recipe in this process, reporting validation accuracy after each epoch.

    Pruning raises inside ``fit`` (Optuna's Keras callback) and ends the trial early. Errors are
    returned, not raised: one trial failing must not fail the others' Spark jobs. The driver,
    not this task, tells the study how the trial ended and logs it to MLflow.
    """
    import optuna

    from mnist_mlops.pipelines.training.fit import fit_model
    from mnist_mlops.pipelines.training.spark_runner import this_worker

    study = task.study.load()
    trial = optuna.trial.Trial(study, task.trial_id)
    host, pid = socket.gethostname(), os.getpid()
    where = {"host": host, "pid": pid, "worker": this_worker()}
    for key, value in where.items():  # in the storage while the trial runs: who runs it
        trial.set_user_attr(key, value)
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    outcome = TrialOutcome("complete", host, pid, threads)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        _fresh_keras_state()
        fitted = fit_model(
            task.bundle,
            task.hyperparameters,
            task.architecture,
            callbacks=[_pruning_callback(trial)],
        )
        outcome.history = fitted.history
    except optuna.TrialPruned:
        outcome.state = "pruned"
    except Exception as exc:
        outcome.state = "failed"
        outcome.error = "".join(traceback.format_exception_only(exc)).strip()
    outcome.fit_s = time.perf_counter() - started
    outcome.cpu_s = time.process_time() - cpu
    return outcome


def _pruning_callback(trial: Any) -> Any:
    from optuna_integration import TFKerasPruningCallback

    return TFKerasPruningCallback(trial, OBJECTIVE)


def _fresh_keras_state() -> None:
    """Forget the previous trial's graphs: a Spark worker process runs trial after trial."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
