"""A real scoring server on a free port, serving the shared registry's production model."""

import pytest

from mnist_mlops.serving.process import ScoringProcess

TOKEN = "serving-token-for-tests"


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
