"""Stores failing under a real workspace: a clear error, no version pointing at missing
artifacts, and the next run completes once the store is back."""

import os
import tempfile

import mlflow
import pytest

from mnist_mlops.pipelines.registration.nodes import (
    log_candidate,
    push_to_production,
    register_in_sandbox,
)
from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.workspaces import Workspace, WorkspaceError
from mnist_mlops.workspaces.workspace import INHERITED_VARIABLES
from tests.conftest import NO_RECIPE_EXTRAS
from tests.pipelines.registration.conftest import passed_gate

REGISTRATION = RegistrationParameters(
    model_name="fault-cnn",
    min_test_accuracy=0.0,
    max_regression=1.0,
    production_experiment="pushed-models",
)


def _workspace(local_workspace) -> Workspace:
    settings = local_workspace.settings
    credentials = {
        "MLFLOW_TRACKING_USERNAME": settings.username,
        "MLFLOW_TRACKING_PASSWORD": settings.password,
    }
    return Workspace(local_workspace.name, local_workspace.uri, credentials=credentials)


@pytest.fixture
def sandbox_version(local_workspaces, monkeypatch):
    """A model version registered in the sandbox (an untrained CNN: pushing is what is tested)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    # The server keeps retrying a stopped object store for minutes: the client stops waiting.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    sandbox = _workspace(local_workspaces["sandbox"])
    hyperparameters = {"epochs": 1, "batch_size": 64, "learning_rate": 0.001}
    hyperparameters.update(dropout=0.0, shift_px=0, seed=1, **NO_RECIPE_EXTRAS)
    model = build_model("lean_cnn", hyperparameters, total_steps=1)
    with sandbox.session() as client:
        experiment = client.get_experiment_by_name("faults") or client.get_experiment(
            client.create_experiment("faults")
        )
    mlflow.set_tracking_uri(sandbox.tracking_uri)
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        candidate = log_candidate(model, {"strategy": "single_node", "run_id": None})
    mlflow.set_tracking_uri(None)
    return register_in_sandbox(candidate, passed_gate(0.5), {"sha256": {}}, sandbox, REGISTRATION)


def _every_version_loads(production: Workspace) -> list[str]:
    """Each production version's artifacts download: none points at missing artifacts."""
    with production.session() as client:
        versions = client.search_model_versions(f"name = '{REGISTRATION.model_name}'")
    for version in versions:
        with tempfile.TemporaryDirectory() as folder:
            production.download(f"models:/{version.name}/{version.version}", folder)
    return sorted(v.version for v in versions)


def _base_env() -> dict[str, str]:
    return {k: os.environ[k] for k in INHERITED_VARIABLES if k in os.environ}


def test_object_store_down_during_the_push(local_workspaces, sandbox_version, monkeypatch):
    sandbox = _workspace(local_workspaces["sandbox"])
    production = _workspace(local_workspaces["production"])
    store = local_workspaces["production"].store
    before = _every_version_loads(production)
    store.stop()
    # The upload hangs until the client gives up: once, and sooner than the fixture's 30 s
    # twice (60 s), while the requests before it (MLflow's database is up) answer in ms.
    with monkeypatch.context() as failing:
        failing.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        failing.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            with pytest.raises(WorkspaceError) as error:
                push_to_production(sandbox_version, sandbox, production, REGISTRATION)
        finally:
            store.start(("mlflow-artifacts",), _base_env())
    message = str(error.value)
    assert "'production'" in message and "artifact store" in message, message
    assert local_workspaces["production"].settings.password not in message
    assert _every_version_loads(production) == before  # nothing registered

    pushed = push_to_production(sandbox_version, sandbox, production, REGISTRATION)
    assert _every_version_loads(production) == sorted([*before, pushed.version])


def test_postgres_down_during_the_push(local_workspaces, sandbox_version):
    sandbox = _workspace(local_workspaces["sandbox"])
    production = _workspace(local_workspaces["production"])
    database = local_workspaces["production"].postgres
    before = _every_version_loads(production)
    database.stop()
    try:
        with pytest.raises(WorkspaceError) as error:
            push_to_production(sandbox_version, sandbox, production, REGISTRATION)
    finally:
        database.start(("mlflow", "mlflow_auth"))
    message = str(error.value)
    assert "'production'" in message and "OperationalError" in message, message
    assert _every_version_loads(production) == before

    pushed = push_to_production(sandbox_version, sandbox, production, REGISTRATION)
    assert pushed.version in _every_version_loads(production)
