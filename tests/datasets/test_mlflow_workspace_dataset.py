import pytest
from kedro.io import DatasetError

from mnist_mlops.datasets import MlflowWorkspaceDataset
from mnist_mlops.workspaces import Workspace


def test_loads_the_workspace_with_its_credentials_and_cannot_save():
    dataset = MlflowWorkspaceDataset(
        name="production",
        tracking_uri="http://127.0.0.1:9",
        credentials={"MLFLOW_TRACKING_USERNAME": "prod", "MLFLOW_TRACKING_PASSWORD": "pw-123"},
    )
    workspace = dataset.load()
    assert workspace == Workspace(
        "production",
        "http://127.0.0.1:9",
        credentials={"MLFLOW_TRACKING_USERNAME": "prod", "MLFLOW_TRACKING_PASSWORD": "pw-123"},
    )
    assert "pw-123" not in repr(workspace) and "pw-123" not in str(dataset)
    with pytest.raises(DatasetError, match="cannot be saved"):
        dataset.save(workspace)
