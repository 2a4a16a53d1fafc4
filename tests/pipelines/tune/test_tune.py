"""`kedro run --pipeline tune --env azure` on local Spark, twice on one study, as a user types it.

The first run trains three tiny trials one at a time (640 images, 2 epochs, lean_cnn) and the
pruner stops the two whose learning rate cannot learn; the second resumes the study with two
trials at once, and the test kills the Spark worker process of one of them half-way.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from mnist_mlops.datasets import StudyStorage
from mnist_mlops.pipelines.training.nodes import choose_recipe
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from tests.pipelines.tune.test_study import _section, tuning
from tests.test_spark_cluster import scratch_project

pytestmark = pytest.mark.slow

STUDY = "tiny"
# TPE's first ten trials are random. Seed 25 samples the learning rates 0.003, 1e-7, 1e-7 for
# this space: trials 1 and 2 learn nothing and are pruned after epoch 1. The resumed run samples
# with seed 25 + 3 trials: 0.003, 1e-7, 0.003.
PARAMS = {
    "data_prep.max_train_images": 640,
    "data_prep.validation_images": 300,
    "tuning.study_name": STUDY,
    "tuning.sampler_seed": 25,
    "tuning.budget_minutes": 10,
    "tuning.pruner.startup_trials": 1,
    "tuning.pruner.warmup_epochs": 0,
    "tuning.space.architecture": "lean_cnn",
    "tuning.space.epochs": 2,
    "tuning.space.batch_size": 64,
    "tuning.space.learning_rate": "0.003+0.0000001",
}


def kedro_tune(project: Path, **params) -> subprocess.Popen:
    arguments = ",".join(f"{k}={v}" for k, v in {**PARAMS, **params}.items())
    command = [str(Path(sys.executable).parent / "kedro"), "run", "--pipeline", "tune"]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "250"}
    env.pop("SPARK_MASTER", None)  # local[*]: two slots on two cores
    return subprocess.Popen(
        [*command, "--env", "azure", "--params", arguments],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(run: subprocess.Popen) -> str:
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-5000:]
    return output


def _study(project: Path):
    storage = StudyStorage(journal=str(project / "data/06_models/optuna/journal.log"))
    return optuna.load_study(study_name=STUDY, storage=storage.open()), storage


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return scratch_project(tmp_path_factory.mktemp("tune"))


@pytest.fixture(scope="module")
def first_run(project) -> str:
    return _finish(kedro_tune(project, **{"tuning.n_trials": 3, "tuning.parallel_trials": 1}))


def _kill_a_running_trial(project: Path, first: int, killed: list[int]) -> None:
    """Kill the worker process of the first trial from ``first`` on seen running."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not killed:
        time.sleep(0.3)
        try:
            study, _ = _study(project)
        except Exception:  # not created yet
            continue
        for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            if trial.number >= first and "pid" in trial.user_attrs:
                os.kill(trial.user_attrs["pid"], signal.SIGKILL)
                killed.append(trial.number)
                return


@pytest.fixture(scope="module")
def resumed_run(project, first_run) -> tuple[str, int]:
    killed: list[int] = []
    run = kedro_tune(project, **{"tuning.n_trials": 3, "tuning.parallel_trials": 0})
    killer = threading.Thread(target=_kill_a_running_trial, args=(project, 3, killed))
    killer.start()
    output = _finish(run)
    killer.join()
    assert killed, "no running trial was seen to kill"
    return output, killed[0]


def _trial_runs(project: Path) -> dict[str, list]:
    """The nested trial runs of each tune run, oldest tune run first."""
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/sandbox.db")
    runs = mlflow.search_runs(experiment_names=["mnist-mlops"], output_format="list")
    parents = sorted(
        (r for r in runs if r.info.run_name == "tune"), key=lambda r: r.info.start_time
    )
    return {
        p.info.run_id: sorted(
            (r for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id),
            key=lambda r: int(r.data.tags["mnist.trial"]),
        )
        for p in parents
    }


def test_trials_are_stored_pruned_and_tracked_as_nested_runs(project, first_run):
    study, _ = _study(project)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "PRUNED"], states
    assert [t.params["learning_rate"] for t in study.trials] == [0.003, 1e-7, 1e-7]
    assert list(study.trials[0].intermediate_values) == [0, 1]  # one report per epoch
    assert list(study.trials[1].intermediate_values) == [0]  # stopped after its first epoch
    for trial in study.trials:
        assert trial.user_attrs["pid"] != os.getpid() and trial.user_attrs["threads"] == "1"
        assert trial.user_attrs["wall_s"] >= trial.user_attrs["fit_s"] > 0

    (runs,) = _trial_runs(project).values()
    assert [r.info.status for r in runs] == ["FINISHED", "KILLED", "KILLED"]
    assert [r.data.tags["mnist.trial_state"] for r in runs] == ["complete", "pruned", "pruned"]
    client = mlflow.MlflowClient()
    history = client.get_metric_history(runs[0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert runs[0].data.params["learning_rate"] == "0.003"
    assert runs[0].data.tags["mnist.pid"] == str(study.trials[0].user_attrs["pid"])
    assert runs[0].data.metrics["wall_time_s"] > 0


def test_the_run_ends_on_the_studys_summary(project, first_run):
    summary = (project / "data/08_reporting/run_summary.md").read_text()
    assert summary.startswith("# Run summary: tune (env azure)")
    assert first_run.rstrip().endswith(summary.rstrip())
    text = " ".join(summary.split())
    assert "Study tiny (journal file " in text
    assert "3 trial(s) this run (1 complete, 2 pruned, 0 failed), 3 in the study" in text
    assert "Best: trial 0, validation accuracy" in text
    assert "kedro run --env azure --params training.recipe=tuned" in text
    for chart in ("tuning_history.png", "tuning_importances.png"):
        assert (project / "data/08_reporting" / chart).stat().st_size > 1000
    assert "trial 1 pruned" in first_run and "best " in first_run and "min left" in first_run


def test_the_tuned_recipe_is_the_studys_best_trial(project, first_run):
    _, storage = _study(project)
    training = TrainingParameters.model_validate({**_section("training"), "recipe": "tuned"})
    tuned, report = choose_recipe(training, tuning(study_name=STUDY), storage)
    assert report["trial"] == 0 and tuned.architecture == "lean_cnn"
    assert tuned.hyperparameters.learning_rate == 0.003 and tuned.hyperparameters.epochs == 2


def test_a_second_run_resumes_the_study_and_outlives_a_killed_worker(project, resumed_run):
    output, killed = resumed_run
    assert f"Study {STUDY} in journal file" in output and "resumed with 3 trial(s)" in output
    study, _ = _study(project)
    resumed = study.trials[3:]
    assert len(resumed) == 3
    states = {t.number: t.state.name for t in resumed}
    # The others learn (0.003): complete, or pruned if below the median of the completed ones.
    assert states.pop(killed) == "FAIL" and set(states.values()) <= {"COMPLETE", "PRUNED"}
    assert "Spark job failed" in study.trials[killed].user_attrs["error"]
    # Two at once: trials in two worker processes whose times overlapped.
    overlapping = [
        (x.user_attrs["pid"], y.user_attrs["pid"])
        for x in resumed
        for y in resumed
        if x.number < y.number and x.datetime_start < y.datetime_start < x.datetime_complete
    ]
    assert any(x != y for x, y in overlapping), overlapping
    first, second = _trial_runs(project).values()
    assert len(first) == 3
    statuses = {r.data.tags["mnist.trial"]: r.info.status for r in second}
    assert statuses.pop(str(killed)) == "FAILED"
    assert set(statuses.values()) <= {"FINISHED", "KILLED"}
    assert "1 failed), 6 in the study" in " ".join(output.split())
