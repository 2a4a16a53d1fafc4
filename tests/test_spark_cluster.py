"""A real Spark standalone cluster, and `kedro run --env azure` training across its workers."""

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

from mnist_mlops.serving.process import free_port
from mnist_mlops.spark.cluster import Cluster
from tests.conftest import PROJECT_ROOT, RAW_MNIST


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """One standalone cluster for the module's runs: starting one costs ~25 s."""
    state_dir = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(state_dir=state_dir, port=free_port(), webui_port=free_port())
    state = cluster.up(workers=2, cores=1, memory="1500m")
    assert state["aliveworkers"] == 2
    yield cluster
    cluster.down()
    assert cluster.status() is None


@pytest.fixture
def cluster(standalone):
    """The module's cluster with both workers alive and no log left by an earlier run."""
    assert standalone.status()["aliveworkers"] == 2
    for app in standalone.state_dir.glob("worker-*-work/*"):  # finished applications only
        shutil.rmtree(app, ignore_errors=True)
    return standalone


def scratch_project(root: Path) -> Path:
    """A project directory of its own: outputs and MLflow stores land there."""
    project = root / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    (project / "conf").symlink_to(PROJECT_ROOT / "conf")
    (project / "src").mkdir()  # Kedro wants it there; the package is installed in the venv
    return project


def kedro_train(*params: str, to_nodes: str | None = "select_champion") -> list[str]:
    """`kedro run --env azure` with distributed training on the cluster, up to ``to_nodes``
    (data_prep and training by default; None: the whole flow, registration included)."""
    arguments = ",".join(["training.strategies=distributed", *params])
    scope = ["--to-nodes", to_nodes] if to_nodes else []
    return [str(Path(sys.executable).parent / "kedro"), "run", "--env", "azure",
            *scope, "--params", arguments]  # fmt: skip


def environment(cluster: Cluster) -> dict[str, str]:
    # COLUMNS: wide enough that Kedro's rich log does not wrap the errors the tests look for.
    return {
        **os.environ,
        "SPARK_MASTER": cluster.master_url,
        "KEDRO_DISABLE_TELEMETRY": "true",
        "COLUMNS": "200",
    }


def test_distributed_training_runs_on_both_workers(cluster, tmp_path):
    project = scratch_project(tmp_path)
    result = subprocess.run(
        kedro_train(
            "data_prep.max_train_images=640",
            "training.hyperparameters.epochs=1",
            "training.hyperparameters.batch_size=64",
        ),
        cwd=project,
        env=environment(cluster),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Each worker launched its own executor, whose log shows its rank training.
    for index in range(2):
        logs = "".join(
            path.read_text()
            for path in (cluster.state_dir / f"worker-{index}-work").rglob("stderr")
        )
        assert "epoch 1/1" in logs, f"worker {index} trained nothing"
    ranks = {
        line.split("worker ")[1][0]
        for path in cluster.state_dir.rglob("stderr")
        for line in path.read_text().splitlines()
        if "epoch 1/1" in line
    }
    assert ranks == {"0", "1"}


def test_down_is_safe_when_nothing_runs(tmp_path):
    cluster = Cluster(state_dir=tmp_path / "none", port=free_port(), webui_port=free_port())
    cluster.down()
    assert cluster.status() is None


def test_a_master_still_serving_html_is_not_up_yet(tmp_path):
    """While it starts, the master's web UI answers /json/ with its HTML page."""

    class HtmlPage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<!DOCTYPE html><html></html>")

        def log_message(self, *args):
            pass

    page = http.server.HTTPServer(("127.0.0.1", 0), HtmlPage)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    try:
        cluster = Cluster(state_dir=tmp_path, port=free_port(), webui_port=page.server_port)
        assert cluster.status() is None
    finally:
        page.shutdown()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _executor_of(worker_pid: int) -> int | None:
    for child in _children(worker_pid):
        cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes()
        if b"CoarseGrainedExecutorBackend" in cmdline:
            return child
    return None


def test_a_lost_executor_fails_the_node_quickly_and_the_run_is_marked_failed(cluster, tmp_path):
    project = scratch_project(tmp_path)
    run = subprocess.Popen(
        kedro_train(
            "data_prep.max_train_images=30000",
            "training.hyperparameters.epochs=20",
            "registration.min_test_accuracy=0",  # had training finished, it would register
            to_nodes=None,
        ),
        cwd=project,
        env=environment(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker_logs = cluster.state_dir / "worker-0-work"
    deadline = time.monotonic() + 300
    while not any("training on" in p.read_text() for p in worker_logs.rglob("stderr")):
        assert run.poll() is None and time.monotonic() < deadline, "training never started"
        time.sleep(0.5)
    time.sleep(3)
    executor = _executor_of(cluster.worker_pids()[0])
    assert executor is not None
    arguments = (Path("/proc") / str(executor) / "cmdline").read_bytes().split(b"\0")
    executor_id = arguments[arguments.index(b"--executor-id") + 1].decode()
    os.kill(executor, signal.SIGKILL)
    killed_at = time.monotonic()
    output, _ = run.communicate(timeout=300)
    assert run.returncode != 0
    assert time.monotonic() - killed_at < 120  # bounded: no hang on the lost peer
    # The driver's error names the executor that was lost.
    assert re.search(
        rf"DistributedTrainingError: .* executor {executor_id} was lost \(.*code 137\)", output
    ), output[-5000:]
    assert_failed_and_nothing_registered(project)


def assert_failed_and_nothing_registered(project: Path) -> None:
    """The run is marked failed in MLflow, and no model reached either registry."""
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlruns/sandbox.db")
    runs = client.search_runs(
        [client.get_experiment_by_name("mnist-mlops").experiment_id],
        "tags.mlflow.runName = '__default__'",
    )
    assert runs[0].info.status == "FAILED"
    assert not (project / "data" / "06_models" / "champion.keras").exists()
    for store in ("sandbox", "production"):
        database = project / "mlruns" / f"{store}.db"
        if database.exists():
            registry = mlflow.MlflowClient(f"sqlite:///{database}")
            assert registry.search_registered_models() == [], store


# `kedro run` in a driver whose training function raises in the worker of rank 1 only. Defined
# in __main__, the function travels to the workers by value; fit_model is looked up at run time.
FAILING_RANK_1 = """
import json, os, sys
from kedro.framework.cli import main
from mnist_mlops.pipelines.training import fit, nodes

def fit_model_failing_on_rank_1(**kwargs):
    if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        raise ValueError("rank 1 cannot read its shard")
    return fit.fit_model(**kwargs)

nodes.fit_model = fit_model_failing_on_rank_1
sys.exit(main())
"""


TIMEOUT_S = 900


def test_a_worker_raising_fails_the_node_quickly_and_names_the_worker(cluster, tmp_path):
    project = scratch_project(tmp_path)
    command = kedro_train(
        "data_prep.max_train_images=640",
        "training.hyperparameters.epochs=1",
        "training.hyperparameters.batch_size=64",
        f"training.timeout_s={TIMEOUT_S}",
        "registration.min_test_accuracy=0",  # without the fault, the run would register
        to_nodes=None,
    )
    started_at = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", FAILING_RANK_1, *command[1:]],
        cwd=project,
        env=environment(cluster),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S + 300,
    )
    elapsed = time.monotonic() - started_at
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Rank 0 is not waited for: the run ends on rank 1's error, not on training.timeout_s (how
    # long it takes depends on the load: 77 s in one full-suite run, 221 s at a load average of 12).
    assert elapsed < TIMEOUT_S, elapsed
    # The driver's error names the worker, its executor and its exception.
    assert re.search(
        r"DistributedTrainingError: worker 1 \(executor \d+ at [\w.-]+:\d+, pid \d+ on "
        r".*\) failed with ValueError: rank 1 cannot read its shard",
        output,
    ), output[-5000:]
    assert "did not finish within" not in output
    assert_failed_and_nothing_registered(project)


def test_tuning_runs_one_trial_per_worker(cluster, tmp_path):
    from tests.pipelines.tune.test_tune import PARAMS

    project = scratch_project(tmp_path)
    params = {**PARAMS, "tuning.n_trials": 2, "tuning.pruner.kind": "none"}
    arguments = ",".join(f"{key}={value}" for key, value in params.items())
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", "--pipeline", "tune", "--env",
         "azure", "--params", arguments],
        cwd=project,
        env=environment(cluster),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Tuning on 2 slot(s) of Spark {cluster.master_url}" in result.stdout
    import optuna

    from mnist_mlops.datasets import StudyStorage

    storage = StudyStorage(journal=str(project / "data/06_models/optuna/journal.log")).open()
    trials = optuna.load_study(study_name=PARAMS["tuning.study_name"], storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    # Each in its own executor (one per worker), at the same time, with one TensorFlow thread.
    workers = [re.search(r"executor \d+", t.user_attrs["worker"]).group() for t in trials]
    assert len(set(workers)) == 2, workers
    first, second = sorted(trials, key=lambda t: t.datetime_start)
    assert second.datetime_start < first.datetime_complete
    assert {t.user_attrs["threads"] for t in trials} == {"1"}
