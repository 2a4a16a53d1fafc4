"""The log filters that keep a run quiet (a whole run's output is checked in tests/test_run.py)."""

import logging
import os
import subprocess
import sys

from mnist_mlops.runtime import quiet_log
from mnist_mlops.spark.session import spark_conf


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


# What a run imports before its first node, in a fresh process whose Python warnings go to the
# log as Kedro's logging sends them (``py.warnings`` records).
IMPORT_AS_A_RUN = """
import logging
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
logging.captureWarnings(True)
from kedro.framework.project import configure_project
configure_project("mnist_mlops")  # imports settings.py, and with it the hooks
import mnist_mlops.cli
from mnist_mlops.pipeline_registry import register_pipelines
register_pipelines()
"""


def test_the_projects_imports_print_no_warning():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_AS_A_RUN], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "warning" not in (run.stdout + run.stderr).lower(), run.stderr[-3000:]
