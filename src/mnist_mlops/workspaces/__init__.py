"""MLflow workspaces: how the project reaches them, and the local stores standing in for them."""

from mnist_mlops.workspaces.workspace import (
    Workspace,
    WorkspaceError,
    display_uri,
    local_artifact_location,
)

__all__ = ["Workspace", "WorkspaceError", "display_uri", "local_artifact_location"]
