"""A real ``kedro run`` prints no error, no warning a user cannot act on, and ends on a summary.

One tiny run of the whole default flow in a subprocess (what a user types, so the C++ and JVM
lines are in its output too): 640 images, one epoch, the `local` strategy (the runner in the
driver) and the `custom` one (Spark executors, multi-worker collectives), registration and
deploy with its scoring server.
"""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from mnist_mlops import quiet_log
from mnist_mlops.hooks import spark_conf
from tests.conftest import PROJECT_ROOT

# Lines that may say WARN(ING), each with where it comes from and why it stays.
ALLOWED_WARNINGS = {
    # TensorFlow's shared libraries log "I0000 ... cudart_stub.cc ... Could not find cuda drivers"
    # while they load, before any log configuration exists; absl prefixes it with this notice.
    # Neither TF_CPP_MIN_LOG_LEVEL (even 3) nor anything else in-process reaches it (measured).
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    # Not a warning: Spark says at which level its log starts.
    r'^Setting default log level to "WARN"\.$',
    # The JVM announces the incubator module Spark 4 itself adds to its command line.
    r"^WARNING: Using incubator modules: jdk\.incubator\.vector$",
    # pip's pyspark ships no native Hadoop library; the Java fallback is what every pip user runs.
    r"WARN NativeCodeLoader: Unable to load native-hadoop library for your platform",
    # kedro-mlflow's KedroPipelineModel has no type hints and MLflow says so when Kedro's CLI
    # imports the plugin's commands, before any code of this project runs.
    r"WARNING .*mlflow/pyfunc/utils/data_validation\.py:\d+: UserWarning: .*Add type hints to the "
    r"`predict` method",
}
PARAMS = {
    "data_prep.max_train_images": 640,
    "data_prep.validation_images": 300,
    "training.strategies": "local+custom",
    "training.hyperparameters.epochs": 1,
    "training.hyperparameters.batch_size": 64,
    "registration.min_test_accuracy": 0.3,
    "deployment.min_test_accuracy": 0.3,
    "deployment.min_photo_accuracy": 0.0,
    "deployment.infra_requests": 1,
}


@pytest.fixture
def scratch_project(tmp_path):
    """A project folder whose outputs and MLflow stores land in ``tmp_path``."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01_raw").symlink_to(PROJECT_ROOT / "data" / "01_raw")
    for shared in ("conf", "pyproject.toml"):
        (tmp_path / shared).symlink_to(PROJECT_ROOT / shared)
    (tmp_path / "src").mkdir()  # Kedro wants the folder; the package is installed
    return tmp_path


@pytest.mark.slow
def test_a_default_run_is_quiet_and_ends_on_its_summary(scratch_project):
    env = {**os.environ, "COLUMNS": "400"}  # one line per log record: no wrapped messages
    command = [str(Path(sys.executable).parent / "kedro"), "run", "--params"]
    command.append(",".join(f"{key}={value}" for key, value in PARAMS.items()))
    run = subprocess.run(
        command,
        cwd=scratch_project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1200,
    )
    output = run.stdout
    assert run.returncode == 0, output[-5000:]

    assert "ERROR" not in output and "E0000" not in output
    warnings = [line for line in output.splitlines() if re.search(r"\bWARN(ING)?\b", line)]
    unexpected = [w for w in warnings if not any(re.search(a, w) for a in ALLOWED_WARNINGS)]
    assert not unexpected, "\n".join(unexpected)

    summary = (scratch_project / "data/08_reporting/run_summary.md").read_text()
    assert summary.startswith("# Run summary: __default__ (env local)")
    assert output.rstrip().endswith(summary.rstrip())  # printed last, after Kedro's own lines
    for heading in ("## Training", "## Registration", "## Deployment", "## Reports", "## Next"):
        assert heading in summary
    assert "| local/lean_cnn | 1 |" in summary and "| custom/lean_cnn | 2 |" in summary
    assert "mnist-cnn version 1 is production" in " ".join(summary.split())
    assert "- strategy comparison chart: `data/08_reporting/strategy_comparison.png`" in summary
    mlflow.set_tracking_uri(f"sqlite:///{scratch_project}/mlruns/sandbox.db")
    (parent,) = mlflow.search_runs(
        experiment_names=["mnist-mlops"],
        filter_string="tags.`mlflow.runName` = '__default__'",
        output_format="list",
    )
    logged = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/run_summary.md")
    assert logged == summary


def test_a_silenced_message_is_dropped_and_everything_else_kept(caplog):
    quiet_log.install()
    quiet_log.install()  # idempotent: the package import already ran it
    runner = logging.getLogger("MirroredStrategyRunner")
    assert sum(isinstance(f, quiet_log._DropMessages) for f in runner.filters) == 1
    with caplog.at_level(logging.WARNING):
        runner.warning("MirroredStrategyRunner will run in local mode on the driver node.")
        runner.warning("Training with 2 slots failed")
        logging.getLogger("mnist_mlops").warning("MirroredStrategyRunner will run in local mode")

    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("MirroredStrategyRunner", "Training with 2 slots failed"),
        ("mnist_mlops", "MirroredStrategyRunner will run in local mode"),  # another logger
    ]


def test_tensorflow_probes_cuda_only_when_training_uses_gpus(monkeypatch):
    assert quiet_log.tensorflow_environment(use_gpu=False)["TF_ENABLED_DEVICE_TYPES"] == "CPU"
    assert "TF_ENABLED_DEVICE_TYPES" not in quiet_log.tensorflow_environment(use_gpu=True)
    monkeypatch.setenv("TF_ENABLED_DEVICE_TYPES", "CPU")  # as TensorFlowHooks sets it

    assert spark_conf({})["spark.executorEnv.TF_ENABLED_DEVICE_TYPES"] == "CPU"  # executors too
