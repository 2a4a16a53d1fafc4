"""One way to run a command as a process of its own: start it, wait until it is ready, stop it.

The scoring server of deploy's infra-validation, the local dev services (``kedro workspaces up``)
and the Spark standalone cluster (``kedro spark-cluster up``) all run through :class:`Launcher`.
"""

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


class ProcessNotReady(RuntimeError):
    """The process exited or was not ready in time; the message ends with its log's last lines."""


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


def answers(
    url: str, headers: Mapping[str, str] | None = None, any_status: bool = True
) -> Callable[[], bool]:
    """A readiness check: ``url`` answers an HTTP GET (with any status, or only a success)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=dict(headers or {})), timeout=2
            ):
                return True
        except urllib.error.HTTPError:
            return any_status
        except OSError:
            return False

    return check


class Launcher:
    """A command run in its own session, its output appended to ``log``.

    With a ``pid_file``, a later command (``kedro workspaces down``) finds the process and stops
    it. ``signal_group``: whether SIGTERM goes to the whole process group (a service and what it
    started) or to the command alone, which then stops its own children (the scoring server's
    workers); SIGKILL always goes to the group, ``stop_timeout_s`` after SIGTERM at the latest.
    """

    def __init__(
        self,
        name: str,
        log: Path,
        pid_file: Path | None = None,
        signal_group: bool = True,
        stop_timeout_s: float = 20,
    ) -> None:
        self.name, self.log, self.pid_file, self.signal_group = name, log, pid_file, signal_group
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen | None = None  # when this process started it

    def start(
        self, command: list[str], env: Mapping[str, str], cwd: str | Path | None = None
    ) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        if self.pid_file is not None:
            self.pid_file.write_text(str(self.process.pid))

    def pid(self) -> int | None:
        """The pid of the running process, or None."""
        if self.process is not None:
            return self.process.pid if self.process.poll() is None else None
        if self.pid_file is None or not self.pid_file.exists():
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

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, poll_s: float = 0.2) -> float:
        """Poll ``ready`` until it holds; the seconds it took. Stops the process and raises
        :class:`ProcessNotReady` if it exits first or ``timeout_s`` passes."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.pid() is None:
                code = f" with code {self.process.returncode}" if self.process else ""
                raise self._failed(f"{self.name} exited{code}")
            if ready():
                return time.monotonic() - started
            time.sleep(poll_s)
        raise self._failed(f"{self.name} was not ready within {timeout_s} s")

    def _failed(self, what: str) -> ProcessNotReady:
        self.stop()
        return ProcessNotReady(f"{what}; its last log lines:\n{log_tail(self.log, 15)}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the process group after ``stop_timeout_s`` or once the
        command has exited (nothing it started outlives it)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                (os.killpg if self.signal_group else os.kill)(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            while self.pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
