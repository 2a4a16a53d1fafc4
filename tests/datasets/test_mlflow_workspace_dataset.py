import os

import mlflow
import pytest

from mnist_mlops.datasets import MlflowWorkspaceDataset, WorkspaceError
from mnist_mlops.datasets.mlflow_workspace_dataset import display_uri


def test_session_scopes_credentials_and_uris(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "sandbox-user")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    workspace = MlflowWorkspaceDataset(
        name="production",
        tracking_uri=f"sqlite:///{tmp_path}/production.db",
        credentials={"MLFLOW_TRACKING_USERNAME": "prod", "MLFLOW_TRACKING_PASSWORD": "pw-123"},
    ).load()
    sandbox_experiment = mlflow.set_experiment("sandbox-experiment").experiment_id
    with workspace.session() as client:
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "prod"
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-123"
        assert mlflow.get_registry_uri() == workspace.tracking_uri
        client.create_registered_model("m")
        client.create_experiment("another")
        assert mlflow.set_experiment("production-experiment").experiment_id != sandbox_experiment
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "sandbox-user"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert os.environ["MLFLOW_EXPERIMENT_ID"] == sandbox_experiment
    with mlflow.start_run() as run:  # in the experiment that was active before the block
        assert run.info.experiment_id == sandbox_experiment


def test_errors_name_the_workspace_without_secrets(tmp_path):
    workspace = MlflowWorkspaceDataset(
        name="production",
        tracking_uri="http://alice:pw-123@127.0.0.1:9",
        credentials={"MLFLOW_TRACKING_PASSWORD": "pw-123"},
        max_retries=0,
        timeout_s=2,
    ).load()
    expected = r"'production' at http://127\.0\.0\.1:9"
    with pytest.raises(WorkspaceError, match=expected) as error, workspace.session() as client:
        client.search_experiments()
    assert "pw-123" not in str(error.value) and "alice" not in str(error.value)
    assert "pw-123" not in repr(workspace)


def test_display_uri_drops_user_and_password():
    assert display_uri("https://u:p@host:443/x") == "https://host:443/x"
    assert display_uri("databricks://profile") == "databricks://profile"
