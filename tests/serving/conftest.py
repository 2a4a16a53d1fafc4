"""A registered servable model and a real scoring server on a free port."""

import mlflow
import pytest

from mnist_mlops.serving.process import ScoringProcess
from mnist_mlops.serving.pyfunc import log_servable_model

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


@pytest.fixture(scope="session")
def scoring_server(registry_uri, tmp_path_factory):
    """``python -m mnist_mlops.serving.app`` serving models:/mnist-cnn@production with a token."""
    request_log = tmp_path_factory.mktemp("server") / "requests.jsonl"
    server = ScoringProcess.for_model(
        "models:/mnist-cnn@production",
        env={"MLFLOW_TRACKING_URI": registry_uri, "MNIST_SERVING_TOKEN": TOKEN},
        token=TOKEN,
    )
    server.command += ["--request-log", str(request_log), "--max-body-bytes", "2000000"]
    with server:
        yield {"url": server.url, "token": TOKEN, "request_log": request_log, "process": server}
