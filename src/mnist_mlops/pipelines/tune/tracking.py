"""Each trial as an MLflow run nested in the pipeline's run, logged from the driver only.

Executors need no registry credentials, and no two processes write to one run: the driver
creates a trial's run when the trial starts and closes it with the trial's state when it ends.
"""

from __future__ import annotations

import logging
from typing import Any

from mnist_mlops.pipelines.tune.trial import TrialOutcome

logger = logging.getLogger(__name__)

# MLflow's run status for each way a trial ends (pruned: stopped on purpose).
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


class TrialRuns:
    """The trials' runs under ``parent_run_id`` (kedro-mlflow's run of the pipeline); without
    one (tracking off), nothing is logged."""

    def __init__(self, parent_run_id: str | None, study_name: str) -> None:
        from mlflow import MlflowClient

        self.parent_run_id, self.study_name = parent_run_id or "", study_name
        # No client without a parent: MLflow 3 would create its default store (./mlflow.db).
        self.client = MlflowClient() if parent_run_id else None
        self.experiment_id = (
            self.client.get_run(self.parent_run_id).info.experiment_id if self.client else ""
        )

    def start(self, number: int, params: dict[str, Any]) -> str | None:
        """A running run for trial ``number`` with its sampled parameters; its id."""
        if self.client is None:
            return None
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.study_name}/trial {number}",
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                "mnist.study": self.study_name,
                "mnist.trial": str(number),
            },
        )
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id

    def end(self, run_id: str | None, trial: Any, outcome: TrialOutcome, wall_s: float) -> None:
        """Close the run: per-epoch validation accuracy, state, wall time, host and process."""
        if self.client is None or run_id is None:
            return
        from mlflow.entities import Metric

        now = _millis()
        metrics = [
            Metric("val_accuracy", value, now, step + 1)  # after epoch step + 1
            for step, value in sorted(trial.intermediate_values.items())
        ]
        figures = {"wall_time_s": wall_s, "fit_s": outcome.fit_s}
        if trial.value is not None:
            figures["objective"] = trial.value
        metrics += [Metric(name, value, now, 0) for name, value in figures.items()]
        tags = {
            "mnist.trial_state": outcome.state,
            "mnist.host": str(trial.user_attrs.get("host", "")),
            "mnist.pid": str(trial.user_attrs.get("pid", "")),
        }
        if outcome.error:
            tags["mnist.error"] = outcome.error[:5000]
        self.client.log_batch(run_id, metrics=metrics, tags=_tags(tags))
        self.client.set_terminated(run_id, RUN_STATUS[outcome.state])


def _params(values: dict[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(name, str(value)) for name, value in sorted(values.items())]


def _tags(values: dict[str, str]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(name, value) for name, value in values.items()]


def _millis() -> int:
    import time

    return int(time.time() * 1000)
