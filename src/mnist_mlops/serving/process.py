"""Run the scoring server in a subprocess: start, wait until ready, read its log, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from mnist_mlops.runtime.launcher import Launcher, ProcessNotReady, answers, free_port

__all__ = ["ScoringProcess", "ServerNotReady", "free_port"]

# The server exited or did not answer in time; the message ends with its last log lines.
ServerNotReady = ProcessNotReady


class ScoringProcess:
    """``python -m mnist_mlops.serving.server`` (or any HTTP server command) as a subprocess.

    Use as a context manager: entering starts it and waits until ``health_path`` answers;
    leaving stops it. Its output goes to a temporary log file (``log_path``) while it runs;
    ``stop`` deletes the file and keeps its last lines for ``log_tail``.
    """

    def __init__(
        self,
        command: list[str],
        *,
        port: int,
        env: dict[str, str] | None = None,
        token: str | None = None,
        ready_timeout_s: float = 120,
        cwd: str | Path | None = None,
        health_path: str = "/ping",
        inherit_env: bool = True,
    ) -> None:
        """``inherit_env=False``: ``env`` is the whole environment (a workspace's
        ``subprocess_env()``), so nothing of this process's credentials reaches the server."""
        self.command, self.port, self.token, self.cwd = command, port, token, cwd
        self.health_path = health_path
        self.env = {
            **(os.environ if inherit_env else {}),
            **(env or {}),
            # `mlflow models serve --env-manager local` needs this venv's executables.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.ready_timeout_s = ready_timeout_s
        descriptor, log_path = tempfile.mkstemp(prefix="scoring-server-", suffix=".log")
        os.close(descriptor)  # ``start`` opens it by name, once per start
        self.log_path = Path(log_path)
        self._stopped_log = ""  # the log's last lines, once ``stop`` has deleted it
        self._launcher = Launcher("the scoring server", self.log_path, signal_group=False)
        self.ready_after_s = float("nan")

    @classmethod
    def for_model(cls, model_uri: str, **kwargs) -> ScoringProcess:
        port = free_port()
        command = [sys.executable, "-m", "mnist_mlops.serving.server", "--model-uri", model_uri]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        return cls(command, port=port, **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's output, running or stopped."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join((text or self._stopped_log).splitlines()[-lines:])

    @property
    def process(self) -> subprocess.Popen | None:
        return self._launcher.process

    def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        ready = answers(f"{self.url}{self.health_path}", headers, any_status=False)
        self._launcher.start(self.command, self.env, self.cwd)
        try:
            self.ready_after_s = self._launcher.wait_until(ready, self.ready_timeout_s, 0.1)
        except ProcessNotReady:
            self.stop()  # deletes the log, keeps its tail
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM to it, then SIGKILL to all it started after 20 s, or once it
        has exited) and delete its log file.

        SIGTERM goes to the command alone, as a service manager sends it: the command stops its
        workers gracefully (ours waits for them), where a SIGTERM to the whole group would also
        end the fork server they come from, mid-shutdown.
        """
        self._launcher.stop()
        if self.log_path.exists():
            self._stopped_log = self.log_tail(lines=100)
            self.log_path.unlink()

    def __enter__(self) -> ScoringProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
