"""A Kedro dataset that hands nodes an MLflow workspace with its own, scoped credentials."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kedro.io import AbstractDataset, DatasetError

# MLflow reads an HTTP server's credentials from these process-wide variables at request time.
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# Where fluent calls go: the URIs, and the experiment mlflow.set_experiment makes active.
_STATE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
_SCOPE_LOCK = threading.RLock()


def display_uri(uri: str) -> str:
    """The URI without any user or password it embeds, fit for logs, tags and errors."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class WorkspaceError(RuntimeError):
    """An MLflow workspace refused or failed a call; the message carries no secret."""


@dataclass(frozen=True)
class Workspace:
    """An MLflow tracking server and registry, with the credentials that open it.

    ``repr`` shows neither the credentials nor a password in the URI.
    """

    name: str
    tracking_uri: str
    registry_uri: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    max_retries: int = 2
    timeout_s: int = 30

    def __repr__(self) -> str:
        return f"Workspace({self.name!r}, {display_uri(self.tracking_uri)!r})"

    @property
    def display_uri(self) -> str:
        return display_uri(self.tracking_uri)

    def default_artifact_location(self) -> str | None:
        """Beside a local SQLite store (``x.db`` -> ``x-artifacts``); servers choose their own."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None
        database = Path(self.tracking_uri.removeprefix("sqlite:///")).resolve()
        return str(database.with_name(f"{database.stem}-artifacts"))

    def scrub(self, text: str) -> str:
        """Remove this workspace's secrets from a message."""
        for secret in self.credentials.values():
            if secret:
                text = text.replace(secret, "***")
        return re.sub(r"//[^/@\s]+:[^/@\s]+@", "//***@", text)

    @contextmanager
    def session(self) -> Iterator[Any]:
        """An ``MlflowClient`` for this workspace, its credentials set only inside the block.

        Inside the block the workspace is also MLflow's current tracking and registry URI, so
        fluent calls (``mlflow.pyfunc.load_model("models:/...")``) reach it too.

        Raises:
            WorkspaceError: for any failure inside the block, naming the workspace and without
                its secrets.
        """
        import mlflow

        scoped = {
            **{name: None for name in CREDENTIAL_VARIABLES},
            **{k: v for k, v in self.credentials.items() if k in CREDENTIAL_VARIABLES and v},
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_s),
        }
        # MLflow keeps its current URIs in module globals mirrored into environment variables:
        # save both exactly, so that leaving the block restores what was there, even "unset";
        # the same for the active experiment, an id that means nothing in another workspace.
        from mlflow.tracking import fluent
        from mlflow.tracking._model_registry import utils as registry_state
        from mlflow.tracking._tracking_service import utils as tracking_state

        with _SCOPE_LOCK:
            saved = {name: os.environ.get(name) for name in [*scoped, *_STATE_VARIABLES]}
            saved_uris = tracking_state._tracking_uri, registry_state._registry_uri
            saved_experiment = fluent._active_experiment_id
            _set_environment(scoped)
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
            try:
                yield mlflow.MlflowClient(self.tracking_uri, self.registry_uri)
            except WorkspaceError:
                raise
            except Exception as exc:
                message = self.scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])
                raise WorkspaceError(
                    f"MLflow workspace {self.name!r} at {self.display_uri} failed: {message}"
                ) from None
            finally:
                _set_environment(saved)
                tracking_state._tracking_uri, registry_state._registry_uri = saved_uris
                fluent._active_experiment_id = saved_experiment


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class MlflowWorkspaceDataset(AbstractDataset[None, Workspace]):
    """Loads a :class:`Workspace`: where an MLflow workspace is and the credentials to open it.

    Credentials come from ``credentials.yml`` through the catalog, never from parameters (which
    kedro-mlflow logs). Example catalog entry::

        production_workspace:
          type: mnist_mlops.datasets.MlflowWorkspaceDataset
          name: production
          tracking_uri: ${oc.env:GCP_MLFLOW_TRACKING_URI,sqlite:///mlruns/production.db}
          credentials: production_mlflow
    """

    def __init__(
        self,
        *,
        name: str,
        tracking_uri: str,
        registry_uri: str | None = None,
        credentials: dict[str, Any] | None = None,
        max_retries: int = 2,
        timeout_s: int = 30,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._workspace = Workspace(
            name=name,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
            credentials={k: str(v) for k, v in (credentials or {}).items() if v},
            max_retries=max_retries,
            timeout_s=timeout_s,
        )
        self.metadata = metadata

    def load(self) -> Workspace:
        return self._workspace

    def save(self, data: None) -> None:
        raise DatasetError("A workspace is configuration: it cannot be saved")

    def _describe(self) -> dict[str, Any]:
        return {"name": self._workspace.name, "tracking_uri": self._workspace.display_uri}
