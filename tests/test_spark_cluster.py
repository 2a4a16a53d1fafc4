"""A real Spark standalone cluster, and `kedro run --env azure` training across its workers."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_distributed_training_runs_on_both_workers(cluster, tmp_path):
    project = tmp_path / "project"
    (project / "data" / "01_raw").mkdir(parents=True)
    (project / "data" / "01_raw" / "mnist").symlink_to(RAW_MNIST)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    for folder in ("conf", "src"):
        (project / folder).symlink_to(PROJECT_ROOT / folder)
    params = ",".join(
        [
            "training.strategies=distributed",
            "data_prep.max_train_images=640",
            "training.hyperparameters.epochs=1",
            "training.hyperparameters.batch_size=64",
        ]
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "run", "--env", "azure",
         "--to-nodes", "select_champion", "--params", params],
        cwd=project,
        env={**os.environ, "SPARK_MASTER": cluster.master_url, "KEDRO_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
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
