"""A registered servable model and a real scoring server on a free port."""

import os
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from mnist_mlops.serving.pyfunc import log_servable_model
from tests.mlflow_servers import free_port

TOKEN = "serving-token-for-tests"


@pytest.fixture(scope="session")
def registry_uri(tmp_path_factory, decent_model):
    """A local registry holding mnist-cnn version 1 with the alias production."""
    root = tmp_path_factory.mktemp("serving-registry")
    uri = f"sqlite:///{root}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("serving", artifact_location=str(root / "artifacts"))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment):
            log_servable_model(decent_model, registered_model_name="mnist-cnn")
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias("mnist-cnn", "production", "1")
    return uri


def wait_ready(url: str, process: subprocess.Popen, headers: dict, timeout_s: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            request = urllib.request.Request(f"{url}/ping", headers=headers)
            with urllib.request.urlopen(request, timeout=2):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not ready in {timeout_s} s")


def start_server(command: list[str], env: dict, log_path) -> subprocess.Popen:
    env = {**os.environ, **env, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    return subprocess.Popen(
        command,
        env=env,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


@pytest.fixture(scope="session")
def scoring_server(registry_uri, tmp_path_factory):
    """``python -m mnist_mlops.serving.app`` serving models:/mnist-cnn@production with a token."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    request_log = root / "requests.jsonl"
    process = start_server(
        [sys.executable, "-m", "mnist_mlops.serving.app", "--model-uri",
         "models:/mnist-cnn@production", "--port", str(port), "--request-log", str(request_log),
         "--max-body-bytes", "2000000"],
        {"MLFLOW_TRACKING_URI": registry_uri, "MNIST_SERVING_TOKEN": TOKEN},
        root / "server.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, {"Authorization": f"Bearer {TOKEN}"})
        yield {"url": url, "token": TOKEN, "request_log": request_log, "log": root / "server.log"}
    finally:
        stop_server(process)
