"""Every version the server loads gets one ONNX Runtime intra-op thread that never spins: through
the pyfunc's own session settings (MLflow's ``model_config``) for versions logged with them, and
by re-opening the session for versions logged before them (their pickled code is frozen)."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import cloudpickle
import mlflow
import pytest
import yaml

from mnist_mlops.serving.model import Download, load
from mnist_mlops.serving.pyfunc import ONNX_ARTIFACT, MnistDigitModel

SPINNING = "session.intra_op.allow_spinning"


class LoggedBefore(MnistDigitModel):
    """The load path of every version logged before the session settings: ONNX Runtime's
    defaults, nothing a loader can change."""

    def load_context(self, context) -> None:
        import onnxruntime

        path = context.artifacts[ONNX_ARTIFACT]
        self._session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name


@pytest.fixture(scope="module")
def logged(registry_uri, tmp_path_factory) -> dict[str, Path]:
    """Version 1 as logged now, and a copy as a version logged before the session settings
    (the older pickled class, no ``model_config`` in its MLmodel)."""
    root = tmp_path_factory.mktemp("onnx-threads")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(registry_uri)
    try:
        current = Path(mlflow.artifacts.download_artifacts("models:/mnist-cnn/1", dst_path=root))
    finally:
        mlflow.set_tracking_uri(previous)
    before = shutil.copytree(current, root / "before")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        (before / "python_model.pkl").write_bytes(cloudpickle.dumps(LoggedBefore()))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    mlmodel = yaml.safe_load((before / "MLmodel").read_text())
    del mlmodel["flavors"]["python_function"][mlflow.pyfunc.MODEL_CONFIG]
    (before / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return {"current": current, "before": before}


def session_of(path: Path, threads: int):
    download = Download(path.parent, path, "mnist-cnn", "1")
    return load(download, "models:/mnist-cnn/1", threads).model._session  # what answers


@pytest.mark.parametrize("logged_as", ["current", "before"])
def test_the_server_gives_every_version_one_thread_that_never_spins(logged, logged_as, caplog):
    with caplog.at_level(logging.INFO, logger="mnist_mlops.serving.model"):
        options = session_of(logged[logged_as], threads=1).get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry(SPINNING) == "0"
    # Only the older version needs its session re-opened by the server.
    assert ("re-opens its ONNX session" in caplog.text) == (logged_as == "before")


def test_threads_0_keeps_onnx_runtimes_defaults(logged):
    options = session_of(logged["current"], threads=0).get_session_options()
    assert options.intra_op_num_threads == 0
    with pytest.raises(RuntimeError, match=SPINNING):  # never set: ONNX Runtime's default
        options.get_session_config_entry(SPINNING)


def test_any_mlflow_loader_sets_the_threads_of_a_current_version(logged, monkeypatch):
    """MLflow's documented override, e.g. for `mlflow models serve` or a Spark UDF."""
    monkeypatch.setenv(
        "MLFLOW_PYFUNC_INFERENCE_CONFIG",
        '{"onnx_intra_op_threads": 2, "onnx_allow_spinning": false}',
    )
    model = mlflow.pyfunc.load_model(str(logged["current"])).unwrap_python_model()
    options = model._session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry(SPINNING) == "0"
