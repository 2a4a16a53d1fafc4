"""Custom Kedro datasets of the project."""

from mnist_mlops.datasets.array_bundle_dataset import ArrayBundle, ArrayBundleDataset
from mnist_mlops.datasets.idx_dataset import IDXDataset
from mnist_mlops.datasets.mlflow_workspace_dataset import (
    MlflowWorkspaceDataset,
    Workspace,
    WorkspaceError,
)
from mnist_mlops.datasets.request_log_dataset import RequestLogDataset
from mnist_mlops.datasets.strategy_run_dataset import StrategyRunDataset

__all__ = [
    "ArrayBundle",
    "ArrayBundleDataset",
    "IDXDataset",
    "MlflowWorkspaceDataset",
    "RequestLogDataset",
    "StrategyRunDataset",
    "Workspace",
    "WorkspaceError",
]
