"""MLflow workspaces: how the project reaches them (URIs, credentials, sessions)."""

from mnist_mlops.workspaces.workspace import (
    Workspace,
    WorkspaceError,
    display_uri,
    local_artifact_location,
)

__all__ = ["Workspace", "WorkspaceError", "display_uri", "local_artifact_location"]
