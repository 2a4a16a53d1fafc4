"""Real ``mlflow server --app-name basic-auth`` processes on 127.0.0.1 for the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mnist_mlops.serving.process import free_port


class MlflowServer:
    """A basic-auth MLflow tracking server with its own stores, user and password."""

    def __init__(self, root: Path, password: str, username: str = "admin") -> None:
        self.root, self.username, self.password = root, username, password
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.ini = root / "auth.ini"
        self.ini.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{root}/auth.db\n"
            f"admin_username = {username}\n"
            f"admin_password = {password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }

    def start(self, timeout_s: float = 90) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_TRACKING", "AZURE_", "GCP_"))
        }
        env.update(
            MLFLOW_AUTH_CONFIG_PATH=str(self.ini),
            MLFLOW_FLASK_SERVER_SECRET_KEY="tests-only-secret",
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        )
        command = [
            sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
            "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        log = open(self.root / "server.log", "ab")  # noqa: SIM115  (closed with the process)
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"mlflow server on port {self.port} not ready in {timeout_s} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
