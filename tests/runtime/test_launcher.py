"""The process launcher on real processes: ready once its check holds, a clear error with the
log's tail when the process exits or is late, SIGKILL for one that ignores SIGTERM, and a process
found again by its pid file."""

import os
import sys
import time

import pytest

from mnist_mlops.runtime.launcher import Launcher, ProcessNotReady, answers, free_port

PYTHON = sys.executable


def _http_server(launcher: Launcher, port: int) -> None:
    command = [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    launcher.start(command, os.environ)


def test_waits_until_the_server_answers_and_stops_it(tmp_path):
    port = free_port()
    launcher = Launcher("http.server", tmp_path / "server.log", tmp_path / "server.pid")
    _http_server(launcher, port)

    seconds = launcher.wait_until(answers(f"http://127.0.0.1:{port}/"), timeout_s=30)
    pid = launcher.pid()

    assert seconds < 30 and pid is not None
    assert (tmp_path / "server.pid").read_text() == str(pid)
    launcher.stop()
    assert launcher.pid() is None and not (tmp_path / "server.pid").exists()


def test_another_launcher_finds_and_stops_it_by_its_pid_file(tmp_path):
    port = free_port()
    _http_server(Launcher("http.server", tmp_path / "s.log", tmp_path / "s.pid"), port)

    later = Launcher("http.server", tmp_path / "s.log", tmp_path / "s.pid")
    later.wait_until(answers(f"http://127.0.0.1:{port}/"), timeout_s=30)
    pid = later.pid()
    later.stop()

    assert pid is not None and later.pid() is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_process_that_exits_is_named_with_its_code_and_log(tmp_path):
    launcher = Launcher("the failing tool", tmp_path / "tool.log")
    launcher.start([PYTHON, "-c", "print('bad configuration'); raise SystemExit(3)"], os.environ)

    with pytest.raises(ProcessNotReady, match=r"the failing tool exited with code 3;") as error:
        launcher.wait_until(lambda: False, timeout_s=30)
    assert error.value.args[0].endswith("its last log lines:\nbad configuration")


def test_a_late_process_is_stopped_and_one_ignoring_sigterm_is_killed(tmp_path):
    ignores_sigterm = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    launcher = Launcher("slow", tmp_path / "slow.log", stop_timeout_s=1)
    launcher.start([PYTHON, "-c", ignores_sigterm + "print('up', flush=True); time.sleep(60)"], {})

    started = time.monotonic()
    with pytest.raises(ProcessNotReady, match=r"slow was not ready within 0.5 s"):
        launcher.wait_until(lambda: False, timeout_s=0.5)
    launcher.stop()  # already stopped: nothing left to do

    assert launcher.pid() is None and launcher.process.returncode == -9
    assert time.monotonic() - started < 10
