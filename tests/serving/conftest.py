"""Real scoring servers on free ports, serving the shared registry's production model."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from mnist_mlops.serving.process import ScoringProcess

TOKEN = "serving-token-for-tests"


@pytest.fixture(scope="session")
def scoring_server(registry_uri, tmp_path_factory):
    """``python -m mnist_mlops.serving.server`` serving models:/mnist-cnn@production with a
    token, one worker."""
    request_log = tmp_path_factory.mktemp("server") / "requests.jsonl"
    server = ScoringProcess.for_model(
        "models:/mnist-cnn@production",
        env={"MLFLOW_TRACKING_URI": registry_uri, "MNIST_SERVING_TOKEN": TOKEN},
        token=TOKEN,
    )
    server.command += ["--request-log", str(request_log), "--max-body-bytes", "2000000"]
    with server:
        yield {"url": server.url, "token": TOKEN, "request_log": request_log, "process": server}


def post(
    server: dict[str, Any],
    body: Any,
    token: str | None = "default",
    path: str = "/invocations",
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """POST to a server; the status and the JSON answer (errors included; MLflow's own
    server answers some errors in plain text: then the text)."""
    token = server["token"] if token == "default" else token
    request = urllib.request.Request(
        server["url"] + path,
        data=raw if raw is not None else json.dumps(body).encode(),
        headers={"Content-Type": content_type}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text


def raw_exchange(port: int, data: bytes, *, wait_s: float = 5.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it (or ``wait_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    return received


def status_and_json(response: bytes) -> tuple[int, dict[str, Any]]:
    """Status code and JSON body of a raw HTTP/1.1 response."""
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)
