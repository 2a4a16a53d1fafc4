"""One MLflow workspace: its tracking server and registry, the credentials that open them, and
every call the project makes to a workspace that is not its process's home.

A workspace never changes process-wide state: its credentials are bound to its server's origin
(:mod:`mnist_mlops.workspaces.auth`), its clients name its URIs explicitly, and subprocesses get
an environment built from its settings alone (:meth:`Workspace.subprocess_env`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mnist_mlops.workspaces import auth

CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# What a subprocess of one workspace inherits from this process: how to run, never whom to be.
# An allow-list, because a deny-list misses the next secret someone exports (a storage key,
# another workspace's password, a token).
INHERITED_VARIABLES = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "JAVA_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NO_PROXY", "HTTP_PROXY",
    "HTTPS_PROXY", "no_proxy", "http_proxy", "https_proxy", "KEDRO_DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
)  # fmt: skip
_USERINFO = re.compile(r"//[^/@\s]+@")
_MAX_MESSAGE = 1500
_EXHAUSTED = re.compile(r"too many \d{3} error responses")


def display_uri(uri: str) -> str:
    """The URI without any user or password it embeds, fit for logs, tags and errors."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def local_artifact_location(tracking_uri: str) -> str | None:
    """Where a local SQLite store keeps artifacts (``x.db`` -> ``x-artifacts``); None for a
    server, which chooses (and with ``--serve-artifacts`` proxies) its own."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return str(database.with_name(f"{database.stem}-artifacts"))


class WorkspaceError(RuntimeError):
    """A workspace refused or failed a call. Neither the message nor the chained cause (a
    :class:`ScrubbedError`) holds a secret."""


class ScrubbedError(Exception):
    """Stands in for a cause whose message may hold a secret: the original's type and scrubbed
    message, with its traceback (code locations only)."""


@dataclass(frozen=True)
class Workspace:
    """An MLflow tracking server and registry, with the credentials that open it.

    ``repr`` shows neither the credentials nor a password in the URI.
    """

    name: str
    tracking_uri: str
    registry_uri: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Workspace({self.name!r}, {self.display_uri!r})"

    @property
    def display_uri(self) -> str:
        return display_uri(self.tracking_uri)

    def artifact_location(self) -> str | None:
        """Where new experiments keep artifacts: beside a local store, or the server's choice."""
        location = local_artifact_location(self.tracking_uri)
        return str(Path(location).resolve()) if location else None

    def scrub(self, text: str) -> str:
        """Remove this workspace's secrets, and any user:password in a URL, from a message."""
        for secret in self.credentials.values():
            if secret:
                text = text.replace(secret, "***")
        return _USERINFO.sub("//***@", text)

    @contextmanager
    def session(self) -> Iterator[Any]:
        """An ``MlflowClient`` of this workspace; failures inside become a :class:`WorkspaceError`.

        Raises:
            WorkspaceError: naming the workspace, with the failure's type and scrubbed message;
                its cause is the scrubbed chain of the original exceptions.
        """
        import mlflow

        self._bind()
        try:
            yield mlflow.MlflowClient(self.tracking_uri, self.registry_uri or self.tracking_uri)
        except WorkspaceError:
            raise
        except Exception as exc:
            raise self.error(exc) from self.scrubbed(exc)

    def download(self, artifact_uri: str, dst_path: str) -> str:
        """Download ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<id>``
        or an artifact URI of this workspace into the caller's folder ``dst_path``; the local
        path."""
        import mlflow

        with self.session() as client:
            return mlflow.artifacts.download_artifacts(
                artifact_uri=_artifact_location(client, artifact_uri),
                dst_path=dst_path,
                tracking_uri=self.tracking_uri,
            )

    def load_pyfunc(self, model_uri: str) -> Any:
        """Download a model of this workspace and load it as a pyfunc; the download is deleted.

        The project's pyfunc reads its ONNX file into memory when it loads, so it needs no file
        once loaded.
        """
        import mlflow

        with tempfile.TemporaryDirectory(prefix=f"{self.name}-") as folder:
            return mlflow.pyfunc.load_model(self.download(model_uri, folder))

    def subprocess_env(self) -> dict[str, str]:
        """The environment of a subprocess working on this workspace alone: the variables of
        :data:`INHERITED_VARIABLES` that are set, this workspace's URIs and credentials; no
        other ``MLFLOW_*`` variable, no other workspace's secret."""
        env = {k: os.environ[k] for k in INHERITED_VARIABLES if k in os.environ}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["MLFLOW_REGISTRY_URI"] = self.registry_uri or self.tracking_uri
        env.update({k: v for k, v in self.credentials.items() if k in CREDENTIAL_VARIABLES})
        return env

    def error(self, exc: BaseException, doing: str = "failed") -> WorkspaceError:
        """A :class:`WorkspaceError` naming this workspace, for ``exc`` (scrubbed)."""
        message = f"{type(exc).__name__}: {exc}"
        if _EXHAUSTED.search(message):  # MLflow retried a failing server and kept no answer
            message += f" (the server now answers: {self._server_says()})"
        message = " ".join(self.scrub(message).split())
        if len(message) > _MAX_MESSAGE:  # MLflow quotes whole response bodies
            message = message[:_MAX_MESSAGE] + " [...]"
        where = f"MLflow workspace {self.name!r} at {self.display_uri}"
        return WorkspaceError(f"{where} {doing}: {message}")

    def _server_says(self) -> str:
        """One request without retries to a database-backed endpoint: the server's own account
        of what fails (``psycopg2.OperationalError ...`` when its database is down)."""
        import requests

        try:
            answer = requests.get(
                f"{self.tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
                params={"max_results": 1},
                auth=auth.OriginAuth(),
                timeout=10,
            )
        except requests.RequestException as exc:
            return f"no answer ({type(exc).__name__})"
        try:
            return f"{answer.status_code} {answer.json().get('message', '')}"
        except ValueError:
            return f"{answer.status_code} {answer.text[:300]}"

    def scrubbed(self, exc: BaseException, depth: int = 0) -> ScrubbedError:
        """A copy of ``exc`` and its causes, scrubbed, to chain to a :class:`WorkspaceError`."""
        copy = ScrubbedError(self.scrub(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"))
        copy.__traceback__ = exc.__traceback__
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is not None and depth < 8:
            copy.__cause__ = self.scrubbed(inner, depth + 1)
        copy.__suppress_context__ = True
        return copy

    def _bind(self) -> None:
        auth.bind(self.tracking_uri, self.credentials)
        if self.registry_uri:
            auth.bind(self.registry_uri, self.credentials)


def _artifact_location(client: Any, uri: str) -> str:
    """Where the artifacts behind a ``models:/`` URI are, asked of ``client``'s workspace.

    MLflow's own resolution of ``models:/`` looks the model up in the process-wide registry,
    whatever registry URI the download is given: resolving here keeps it in this workspace.
    """
    if not uri.startswith("models:/"):
        return uri
    reference = uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        uri = client.get_model_version_download_uri(
            name, client.get_model_version_by_alias(name, alias).version
        )
    elif "/" in reference:
        uri = client.get_model_version_download_uri(*reference.split("/", 1))
    if uri.startswith("models:/"):  # a logged model (models:/m-...)
        return client.get_logged_model(uri.removeprefix("models:/")).artifact_location
    return uri
