"""A Kedro dataset that hands nodes an MLflow workspace with its own credentials."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from mnist_mlops.workspaces import Workspace


class MlflowWorkspaceDataset(AbstractDataset[None, Workspace]):
    """Loads a :class:`~mnist_mlops.workspaces.Workspace`: where an MLflow workspace is and the
    credentials that open it.

    Credentials come from ``credentials.yml`` through the catalog, never from parameters (which
    kedro-mlflow logs); the URI from ``globals.yml``, where kedro-mlflow reads it too::

        production_workspace:
          type: mnist_mlops.datasets.MlflowWorkspaceDataset
          name: production
          tracking_uri: ${globals:workspaces.production.tracking_uri}
          credentials: production_mlflow
    """

    def __init__(
        self,
        *,
        name: str,
        tracking_uri: str,
        registry_uri: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._workspace = Workspace(
            name=name,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri or None,
            credentials={k: str(v) for k, v in (credentials or {}).items() if v},
        )
        self.metadata = metadata

    def load(self) -> Workspace:
        return self._workspace

    def save(self, data: None) -> None:
        raise DatasetError("A workspace is configuration: it cannot be saved")

    def _describe(self) -> dict[str, Any]:
        return {"name": self._workspace.name, "tracking_uri": self._workspace.display_uri}
