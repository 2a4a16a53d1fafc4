"""Background processes that outlive the command starting them: start, find, wait for, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path


class ServiceError(RuntimeError):
    """A service did not start or stop; the message names it and ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def log_tail(path: Path, lines: int = 12) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


class Daemon:
    """A command run in its own session, its pid in ``<folder>/<name>.pid``, its output in
    ``<folder>/<name>.log``: a later command (``kedro workspaces down``) finds and stops it."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.pid_file = folder / f"{name}.pid"
        self.log = folder / f"{name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None."""
        if not self.pid_file.exists():
            return None
        pid = int(self.pid_file.read_text())
        with contextlib.suppress(ChildProcessError):  # reap it if it is our exited child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self, command: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        with open(self.log, "ab") as log:
            process = subprocess.Popen(
                command,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the command; stopped as a group
            )
        self.pid_file.write_text(str(process.pid))

    def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Poll ``ready`` until it holds; fail naming the service if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise ServiceError(f"{self.name} exited; its log ends:\n{log_tail(self.log)}")
            if ready():
                return
            time.sleep(0.2)
        self.stop()
        raise ServiceError(f"{self.name} not ready in {timeout_s} s; log:\n{log_tail(self.log)}")

    def stop(self, timeout_s: float = 20) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid() is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers an HTTP GET with any status."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    return check
