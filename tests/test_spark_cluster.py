"""A real Spark standalone cluster, and `kedro run --env azure` training across its workers."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from mnist_mlops.serving.process import free_port
from mnist_mlops.spark_cluster import Cluster
from tests.conftest import PROJECT_ROOT, RAW_MNIST


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(state_dir=tmp_path / "cluster", port=free_port(), webui_port=free_port())
    state = cluster.up(workers=2, cores=1, memory="1500m")
    assert state["aliveworkers"] == 2
    yield cluster
    cluster.down()
    assert cluster.status() is None


def scratch_project(root: Path) -> Path:
    """A project directory of its own: outputs and MLflow stores land there."""
    project = root / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    (project / "conf").symlink_to(PROJECT_ROOT / "conf")
    (project / "src").mkdir()  # Kedro wants it there; the package is installed in the venv
    return project


def kedro_train(*params: str) -> list[str]:
    """`kedro run --env azure` of data_prep and distributed training, on the cluster."""
    arguments = ",".join(["training.strategies=distributed", *params])
    return [str(Path(sys.executable).parent / "kedro"), "run", "--env", "azure",
            "--to-nodes", "select_champion", "--params", arguments]  # fmt: skip


def environment(cluster: Cluster) -> dict[str, str]:
    return {**os.environ, "SPARK_MASTER": cluster.master_url, "KEDRO_DISABLE_TELEMETRY": "true"}


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
    os.kill(executor, signal.SIGKILL)
    killed_at = time.monotonic()
    output, _ = run.communicate(timeout=300)
    assert run.returncode != 0
    assert time.monotonic() - killed_at < 120  # bounded: no hang on the lost peer
    assert "DistributedTrainingError" in output and "executor" in output.lower()

    client = mlflow.MlflowClient(f"sqlite:///{project}/mlruns/sandbox.db")
    runs = client.search_runs(
        [client.get_experiment_by_name("mnist-mlops").experiment_id],
        "tags.mlflow.runName = '__default__'",
    )
    assert runs[0].info.status == "FAILED"
    assert not (project / "data" / "06_models" / "champion.keras").exists()
