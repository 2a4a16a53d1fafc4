"""Custom Kedro datasets of the project."""

from mnist_mlops.datasets.array_bundle_dataset import ArrayBundle, ArrayBundleDataset
from mnist_mlops.datasets.idx_dataset import IDXDataset
from mnist_mlops.datasets.keras_model_dataset import KerasModelDataset
from mnist_mlops.datasets.mlflow_workspace_dataset import MlflowWorkspaceDataset
from mnist_mlops.datasets.picture_set_dataset import PictureSetDataset
from mnist_mlops.datasets.record_dataset import RecordDataset
from mnist_mlops.datasets.request_log_dataset import RequestLogDataset
from mnist_mlops.datasets.strategy_run_dataset import StrategyRunDataset
from mnist_mlops.datasets.study_storage_dataset import StudyStorage, StudyStorageDataset

# The type MlflowWorkspaceDataset loads, importable from here too.
from mnist_mlops.workspaces import Workspace, WorkspaceError

__all__ = [
    "ArrayBundle",
    "ArrayBundleDataset",
    "IDXDataset",
    "KerasModelDataset",
    "MlflowWorkspaceDataset",
    "PictureSetDataset",
    "RecordDataset",
    "RequestLogDataset",
    "StrategyRunDataset",
    "StudyStorage",
    "StudyStorageDataset",
    "Workspace",
    "WorkspaceError",
]
