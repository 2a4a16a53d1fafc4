"""What ``serving/protocol.py`` and ``serving/server.py`` rely on inside uvicorn (pinned to 0.54
in pyproject.toml): when a new uvicorn moves any of it, this fails first and says what to
re-check, before a real server misbehaves. Fast: it reads uvicorn's code, it runs nothing.
"""

from __future__ import annotations

import inspect
import multiprocessing

import pytest
import uvicorn
from uvicorn import _subprocess
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http import flow_control, httptools_impl
from uvicorn.supervisors import multiprocess

from mnist_mlops.serving.protocol import LimitedHttpToolsProtocol

PROTOCOL = httptools_impl.HttpToolsProtocol
CYCLE = httptools_impl.RequestResponseCycle


def source(function) -> str:
    return " ".join(inspect.getsource(function).split())


@pytest.mark.parametrize(
    "method",
    [
        "connection_made",
        "connection_lost",
        "data_received",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "send_400_response",
        "on_response_complete",
        "shutdown",
    ],
)
def test_every_overridden_method_exists_with_the_same_parameters(method):
    theirs = inspect.signature(getattr(PROTOCOL, method))
    ours = inspect.signature(getattr(LimitedHttpToolsProtocol, method))
    assert list(theirs.parameters) == list(ours.parameters), method


def test_the_protocol_state_the_limits_read():
    assert "self.connections = server_state.connections" in source(PROTOCOL.__init__)
    assert "self.loop = " in source(PROTOCOL.__init__)
    made = source(PROTOCOL.connection_made)
    assert "self.connections.add(self)" in made and "self.transport = transport" in made
    assert "self.flow = FlowControl(transport)" in made
    assert callable(flow_control.FlowControl.resume_reading)
    assert isinstance(httptools_impl.STATUS_LINE[503], bytes)


def test_parser_errors_reach_send_400_response():
    """on_url and on_header raise to stop the parser; uvicorn answers through send_400_response."""
    received = source(PROTOCOL.data_received)
    assert "except httptools.HttpParserError:" in received
    assert "self.send_400_response(msg)" in received


def test_the_request_cycle_closes_through_the_protocols_transport():
    """Lingering hooks into the transport uvicorn hands each request cycle: the cycle must get
    the protocol's ``self.transport``, mark the response complete before closing it, and call
    ``on_response_complete`` after; ``more_body`` must stay True while the body still comes."""
    headers_complete = source(PROTOCOL.on_headers_complete)
    assert "transport=self.transport" in headers_complete
    assert "on_response=self.on_response_complete" in headers_complete
    send = source(CYCLE.send)
    completed = send.index("self.response_complete = True")
    closed = send.index("if not self.keep_alive: self.transport.close()", completed)
    assert send.index("self.on_response()", closed) > closed
    assert "self.cycle.more_body = False" in source(PROTOCOL.on_message_complete)
    assert "self.more_body = True" in source(CYCLE.__init__)
    assert "if self.transport.is_closing(): return" in source(PROTOCOL.on_response_complete)
    assert "self.disconnected = False" in source(CYCLE.__init__)


def test_workers_are_started_through_the_replaceable_spawn_context():
    """server.py swaps ``uvicorn._subprocess.spawn`` for a fork server context."""
    assert _subprocess.spawn is multiprocessing.get_context("spawn")
    assert "spawn.Process(" in source(_subprocess.get_subprocess)
    assert "get_subprocess(" in source(multiprocess.Process.__init__)


def test_the_supervisor_reports_a_worker_that_failed_to_start():
    assert STARTUP_FAILURE == 3
    alive = source(multiprocess.Multiprocess.keep_subprocess_alive)
    assert "process.exitcode == STARTUP_FAILURE" in alive
    assert "self.processes.append(process)" in source(multiprocess.Multiprocess.init_processes)
    assert inspect.signature(multiprocess.Process.exitcode.fget)


def test_the_supervisor_pings_only_from_keep_subprocess_alive():
    """server.Supervisor pings less often by skipping rounds of ``keep_subprocess_alive``, and
    sees an exited worker through its multiprocessing process."""
    assert "self.keep_subprocess_alive()" in source(multiprocess.Multiprocess.run)
    assert "self.ping(timeout)" in source(multiprocess.Process.is_alive)
    assert "self.process = get_subprocess(" in source(multiprocess.Process.__init__)


def test_the_tick_and_the_exit_signal_quiet_server_replaces():
    """server.QuietServer ticks once a second (on_tick's counter in tens) and wakes on exit."""
    main_loop = source(uvicorn.Server.main_loop)
    assert "await asyncio.sleep(0.1)" in main_loop and "self.on_tick(counter)" in main_loop
    assert "if counter % 10 == 0:" in source(uvicorn.Server.on_tick)
    assert "self.should_exit = True" in source(uvicorn.Server.handle_exit)
    assert "signal.signal(sig, self.handle_exit) for sig in" in source(
        uvicorn.Server.capture_signals
    )


def test_worker_processes_are_made_from_the_module_level_process_class():
    """server._quiet_workers swaps ``multiprocess.Process`` for ``QuietWorker``."""
    assert "Server(config=self.config)" in source(multiprocess.Process.server.fget)
    for method in ("init_processes", "keep_subprocess_alive", "restart_all"):
        assert "Process(self.config, self.sockets)" in source(
            getattr(multiprocess.Multiprocess, method)
        ), method


def test_the_config_takes_every_option_server_py_passes():
    options = set(inspect.signature(uvicorn.Config).parameters)
    assert {
        "factory",
        "lifespan",
        "http",
        "loop",
        "workers",
        "backlog",
        "timeout_keep_alive",
        "timeout_graceful_shutdown",
        "server_header",
        "timeout_worker_healthcheck",
        "access_log",
        "log_config",
    } <= options
