"""Real ``mlflow server --app-name basic-auth`` processes on 127.0.0.1 for the tests."""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_mlops.devservices.workspaces import basic_auth_ini
from mnist_mlops.serving.process import ScoringProcess, free_port


class MlflowServer:
    """A basic-auth MLflow tracking server with its own stores, user and password.

    ``stop`` then ``start`` again brings it back on the same port with the same stores.
    """

    def __init__(self, root: Path, password: str, username: str = "admin") -> None:
        self.root, self.username, self.password = root, username, password
        self.port = free_port()
        self.process: ScoringProcess | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.ini = root / "auth.ini"
        # The same settings as `kedro workspaces up` (its credential cache included).
        self.ini.write_text(basic_auth_ini(f"sqlite:///{root}/auth.db", username, password))

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
            "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        env = {
            "MLFLOW_AUTH_CONFIG_PATH": str(self.ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only-secret",
            # No job runner: unused here, and its consumers outlive a killed server.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.process = ScoringProcess(
            command, port=self.port, env=env, health_path="/health", ready_timeout_s=300
        )  # a shared 2-core machine once took over 120 s
        self.process.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
