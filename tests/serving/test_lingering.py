"""Lingering close: a client still sending a refused body reads its answer, within bounds; and
the bounds' settings.

A real uvicorn server runs the project's protocol in a thread of this process, in front of a
small app that refuses as the scoring app does (``read_body``'s 413 from the announced size, a
401 from the headers): fast, no model needed. ``test_operations.py`` does the same against
``kedro serve``.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from collections.abc import Iterator
from functools import partial

import pytest
import requests
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mnist_mlops.serving.app import Refusal, error, read_body
from mnist_mlops.serving.process import free_port
from mnist_mlops.serving.protocol import LimitedHttpToolsProtocol
from mnist_mlops.serving.settings import ServingLimits, SettingsError, validate_settings
from tests.conftest import PROJECT_ROOT

LIMIT = 2_000_000
SIX_TIMES = b"0" * (6 * LIMIT)  # more than the kernel buffers hold: the client is still sending


def refusing_app(limits: ServingLimits) -> Starlette:
    async def invocations(request: Request) -> Response:
        if "authorization" not in request.headers:
            raise Refusal(401, "UNAUTHORIZED", "missing or wrong bearer token", close=True)
        return Response(str(len(await read_body(request, limits))))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return error(exc.status, exc.error_code, str(exc), exc.close)

    routes = [Route("/invocations", invocations, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={Refusal: refused})


@pytest.fixture
def serve() -> Iterator:
    """Start a server with the given limits; every one started is stopped after the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**limits) -> int:
        settings = ServingLimits(max_body_bytes=LIMIT, **limits)
        port = free_port()
        config = uvicorn.Config(
            refusing_app(settings),
            host="127.0.0.1",
            port=port,
            http=partial(LimitedHttpToolsProtocol, limits=settings),
            loop="uvloop",
            lifespan="off",
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        while not server.started:
            time.sleep(0.01)
        return port

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def test_requests_reads_its_413_naming_the_limit(serve):
    port = serve()
    url, token = f"http://127.0.0.1:{port}/invocations", {"Authorization": "Bearer x"}
    answer = requests.post(url, data=SIX_TIMES, headers=token, timeout=30)
    assert answer.status_code == 413
    assert answer.json() == {
        "error_code": "REQUEST_ENTITY_TOO_LARGE",
        "message": f"body over the limit of {LIMIT} bytes",
    }


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer x", "Content-Type": "application/json"}, 413)],
)
def test_http_client_reads_its_refusal(serve, headers, status):
    connection = http.client.HTTPConnection("127.0.0.1", serve(), timeout=30)
    connection.request("POST", "/invocations", SIX_TIMES, headers)  # the whole body is sent
    answer = connection.getresponse()
    assert answer.status == status and answer.getheader("connection") == "close"
    assert answer.read().startswith(b'{"error_code":')
    connection.close()


def test_bodies_within_the_limit_are_read_on_one_keep_alive_connection(serve):
    url = f"http://127.0.0.1:{serve()}/invocations"
    with requests.Session() as session:
        for size in (1000, LIMIT, 10):
            answer = session.post(url, data=b"x" * size, headers={"Authorization": "Bearer x"})
            assert answer.status_code == 200 and answer.text == str(size)


def send_forever(port: int, limit_s: float = 30) -> tuple[bytes, float]:
    """Announce a huge body, send it until the server closes; its answer and when it closed."""
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        sock.sendall(head)
        started = time.monotonic()
        try:
            while time.monotonic() - started < limit_s:
                sock.sendall(b"0" * 65536)
                time.sleep(0.001)  # a steady stream, not a flood: the time bound is what ends it
        except OSError:  # reset or broken pipe: closed by the server
            pass
        took = time.monotonic() - started
        try:
            answer = sock.recv(65536)
        except OSError:  # the reset may drop what the client had not read yet
            answer = b""
        return answer, took


def test_a_client_that_sends_forever_is_closed_within_the_time_bound(serve):
    answer, took = send_forever(serve(linger_timeout_s=1))
    assert took < 5, f"still open after {took:.1f} s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 401")


def test_a_client_that_sends_forever_is_closed_past_the_byte_bound(serve):
    _, took = send_forever(serve(max_linger_bytes=1_000_000, linger_timeout_s=60))
    assert took < 10, f"still open after {took:.1f} s"


def test_lingering_connections_count_against_the_connection_cap(serve):
    port = serve(max_connections=2, linger_timeout_s=3)
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    lingering = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    for sock in lingering:
        sock.sendall(head + b"0" * 1000)
        assert sock.recv(65536).startswith(b"HTTP/1.1 401")  # answered, still open
    with socket.create_connection(("127.0.0.1", port), timeout=5) as third:
        assert third.recv(65536).startswith(b"HTTP/1.1 503")
    for sock in lingering:
        sock.close()


def test_no_lingering_when_turned_off(serve):
    """``max_linger_bytes: 0`` closes at once, as before: the client still sending is reset."""
    connection = http.client.HTTPConnection("127.0.0.1", serve(max_linger_bytes=0), timeout=30)
    with pytest.raises(OSError):  # ConnectionResetError or BrokenPipeError
        connection.request("POST", "/invocations", SIX_TIMES * 4)
        connection.getresponse()
    connection.close()


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"max_linger_bytes": -1}, "serving.limits.max_linger_bytes = -1"),
        ({"linger_timeout_s": "soon"}, "serving.limits.linger_timeout_s = 'soon'"),
        ({"linger_bytes": 5}, "serving.limits.linger_bytes = 5"),
    ],
)
def test_bad_linger_settings_are_named(limits, named):
    with pytest.raises(SettingsError, match=re.escape(named)):
        validate_settings({"limits": limits})


def test_the_configured_defaults_are_the_models():
    """conf/base/parameters_serving.yml says what the defaults are; they must agree."""
    configured = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_serving.yml").read_text())
    assert ServingLimits.model_validate(configured["serving"]["limits"]) == ServingLimits()
