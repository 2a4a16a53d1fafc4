"""The driver's side of a study: one thread per Spark task slot, one Spark job per trial.

Each trial is asked for and told on the driver (the sampler sees every finished trial, the
budget is counted in one place); the executor trains it and reports each epoch to the shared
storage, where the pruner reads the other trials. A trial is its own one-task job, so a lost
worker fails that job alone: its trial is marked failed and the slot starts the next one
(``spark.task.maxFailures`` 1 stays right: a trial is not retried half-way).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.pipelines.training.model import resolve_precision
from mnist_mlops.pipelines.training.parameters import Hyperparameters
from mnist_mlops.pipelines.training.spark_runner import spark_failure, watchdog
from mnist_mlops.pipelines.tune.parameters import TuningParameters
from mnist_mlops.pipelines.tune.study import OBJECTIVE, StudyHandle, sample
from mnist_mlops.pipelines.tune.tracking import TrialRuns
from mnist_mlops.pipelines.tune.trial import TrialOutcome, TrialTask, run_trial

logger = logging.getLogger(__name__)

# What a trial trains on: the search reads no test image.
SEARCH_ARRAYS = ("train_images", "train_labels", "validation_images", "validation_labels")
RUN_STATES = ("complete", "pruned", "failed")


@dataclass
class Budget:
    """What this run may still start: trials (``n_trials``) before the ``deadline``."""

    n_trials: int | None
    deadline: float | None  # time.monotonic()
    started: int = 0
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> bool:
        """Whether another trial may start (and if so, it is counted)."""
        with self.lock:
            over = (self.n_trials is not None and self.started >= self.n_trials) or (
                self.deadline is not None and time.monotonic() >= self.deadline
            )
            if self.stopped or over:
                return False
            self.started += 1
            return True

    def minutes_left(self) -> str:
        if self.deadline is None:
            return "no time limit"
        return f"{max(self.deadline - time.monotonic(), 0) / 60:.1f} min left"


@dataclass
class Study:
    """The driver's study: asked and told under one lock, progress counted as trials end."""

    handle: StudyHandle
    tuning: TuningParameters
    recipe: Hyperparameters
    bundle: ArrayBundle
    runs: TrialRuns
    budget: Budget
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_STATES, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)
    optuna_study: Any = None
    asked: dict[int, Any] = field(default_factory=dict)  # running trials by number

    def __post_init__(self) -> None:
        import optuna

        self.optuna_study = self.handle.load()
        seed = self.handle.sampler_seed
        if seed is not None:  # a resumed study must not replay its first trials' values
            seed += len(self.optuna_study.get_trials(deepcopy=False))
        # constant_liar: running trials count as bad ones, so parallel trials spread out.
        self.optuna_study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    def ask(self) -> tuple[TrialTask, dict[str, Any]]:
        with self.lock:
            trial = self.optuna_study.ask()
            values = sample(trial, self.tuning.space)
            self.asked[trial.number] = trial
        architecture = values.pop("architecture")
        hyperparameters = Hyperparameters.model_validate(
            {**self.recipe.model_dump(), **values}
        ).model_dump()
        # Resolved here, as the training pipeline does: every trial's params say which.
        hyperparameters["precision"] = resolve_precision(hyperparameters["precision"])
        task = TrialTask(
            # Optuna's id of the trial in its storage (the number counts within the study).
            self.handle,
            trial._trial_id,
            trial.number,
            self.bundle,
            architecture,
            hyperparameters,
        )
        return task, {"architecture": architecture, **hyperparameters}

    def tell(self, task: TrialTask, outcome: TrialOutcome, wall_s: float) -> Any:
        """Record how the trial ended (where, how long, its error) and tell the study."""
        from optuna.trial import TrialState

        study = self.optuna_study
        with self.lock:
            trial = self.asked.pop(task.number)
            for key, value in _attributes(outcome, wall_s).items():
                trial.set_user_attr(key, value)
            if outcome.state == "complete":
                finished = study.tell(task.number, outcome.history[OBJECTIVE][-1])
            else:
                state = TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL
                finished = study.tell(task.number, state=state)
            self.counts[outcome.state] += 1
            self._log_progress(finished, outcome.state, wall_s)
        return finished

    def _log_progress(self, finished: Any, state: str, wall_s: float) -> None:
        """One line per trial ended: where, and the study's progress against the budget."""
        logger.info(
            "trial %d %s%s in %.0f s on %s pid %s | %d done (%s); best %s; %d running; %s",
            finished.number,
            state,
            "" if finished.value is None else f" ({OBJECTIVE} {finished.value:.4f})",
            wall_s,
            finished.user_attrs.get("host", "?"),
            finished.user_attrs.get("pid", "?"),
            sum(self.counts.values()),
            ", ".join(f"{n} {state}" for state, n in self.counts.items()),
            _best(self.optuna_study),
            len(self.asked),
            self.budget.minutes_left(),
        )


def _attributes(outcome: TrialOutcome, wall_s: float) -> dict[str, Any]:
    """What the storage keeps of where and how long a trial ran (host and pid are set by the
    executor when the trial starts)."""
    found: dict[str, Any] = {
        "wall_s": round(wall_s, 3),
        "fit_s": round(outcome.fit_s, 3),
        "cpu_s": round(outcome.cpu_s, 3),
    }
    if outcome.pid:  # else the task never returned: the executor's own record stands
        found.update(host=outcome.host, pid=outcome.pid, threads=outcome.threads)
    if outcome.error:
        found["error"] = outcome.error[:2000]
    return found


def _best(study: Any) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "none yet"
    return f"{best.value:.4f} (trial {best.number})"


def slots(context: Any, tuning: TuningParameters) -> int:
    """Trials at once: ``tuning.parallel_trials``, or one per Spark task slot (local[*]: one per
    core; a standalone cluster of one-core workers: one per worker)."""
    return tuning.parallel_trials or context.defaultParallelism


def run_trials(context: Any, study: Study, timeout_s: float) -> None:
    """Run trials on ``slots`` Spark task slots until the budget is spent.

    An interrupt (Ctrl-C) cancels the running jobs: their trials are marked failed, none is
    left running in the storage.
    """
    count = slots(context, study.tuning)
    logger.info("Tuning on %d slot(s) of Spark %s", count, context.master)
    with ThreadPoolExecutor(count, thread_name_prefix="trial-slot") as pool:
        futures = [pool.submit(_slot, context, study, timeout_s) for _ in range(count)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            study.budget.stopped = True
            context.cancelAllJobs()
            raise


def _slot(context: Any, study: Study, timeout_s: float) -> None:
    while study.budget.claim():
        task, params = study.ask()
        run_id = study.runs.start(task.number, params)
        started = time.perf_counter()
        outcome = _on_spark(context, task, timeout_s, study.budget)
        wall_s = time.perf_counter() - started
        finished = study.tell(task, outcome, wall_s)
        study.runs.end(run_id, finished, outcome, wall_s)


def _on_spark(context: Any, task: TrialTask, timeout_s: float, budget: Budget) -> TrialOutcome:
    """Run ``task`` as a one-task Spark job; a job that fails (its worker lost, cancelled at the
    trial timeout or on an interrupt) is a failed trial."""
    timer = watchdog(context, timeout_s, f"tuning trial {task.number}")
    try:
        return context.parallelize([task], 1).map(run_trial).collect()[0]
    except Exception as exc:
        if budget.stopped:
            reason = "the run was interrupted"
        elif not timer.is_alive():
            reason = f"still running after tuning.trial_timeout_minutes ({timeout_s / 60:g})"
        else:
            reason = f"its Spark job failed: {spark_failure(exc)}"
        logger.warning("trial %d failed: %s", task.number, reason)
        return TrialOutcome("failed", host="", pid=0, threads="", error=reason)
    finally:
        timer.cancel()
