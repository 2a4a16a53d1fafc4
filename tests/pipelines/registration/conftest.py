"""Two real basic-auth MLflow servers standing in for the sandbox and production workspaces."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mnist_mlops.datasets import Workspace
from mnist_mlops.pipelines.training.fit import fit_model
from mnist_mlops.pipelines.training.model import build_model
from tests.mlflow_servers import MlflowServer


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspaces")
    sandbox = MlflowServer(root / "sandbox", password="sandbox-Pa55word-1")
    production = MlflowServer(root / "production", password="production-Pa55word-2")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(MlflowServer.start, [sandbox, production]))
    yield {"sandbox": sandbox, "production": production}
    sandbox.stop()
    production.stop()


def workspace(server: MlflowServer, name: str, **changes) -> Workspace:
    credentials = {**server.credentials, **changes.pop("credentials", {})}
    return Workspace(name=name, tracking_uri=server.uri, credentials=credentials, **changes)


@pytest.fixture(scope="session")
def tiny_model(small_model_input):
    """A CNN trained for one epoch on a few hundred MNIST images (~50% accurate)."""
    hyperparameters = {"epochs": 1, "batch_size": 64, "learning_rate": 0.003}
    hyperparameters.update(dropout=0.0, shift_px=0, seed=3)
    model = build_model("lean_cnn", hyperparameters, total_steps=1)
    model.set_weights(fit_model(small_model_input, hyperparameters, "lean_cnn").weights)
    return model


@pytest.fixture
def registration_params():
    return {
        "model_name": "mnist-cnn",
        "min_test_accuracy": 0.3,
        "max_regression": 0.002,
        "production_experiment": "pushed-models",
    }


@pytest.fixture
def test_images(small_model_input):
    return small_model_input.load()["test_images"][:100].astype(np.float32)
