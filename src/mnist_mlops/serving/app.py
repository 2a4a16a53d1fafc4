"""A lean scoring server for the MNIST model, speaking MLflow's scoring protocol.

``POST /invocations`` takes ``{"inputs": ...}``, ``{"instances": ...}`` (N x 28 x 28 or N x 784
pixels, 0-255) or ``{"dataframe_records": [{"image": "<base64 PNG/JPEG>", "label": 3}]}`` and
answers ``{"predictions": [{"digit": 7, "probabilities": [...]}]}``. ``GET /ping``, ``/health``
and ``/version`` answer too. The model runs in ONNX Runtime: no TensorFlow in this process.

    python -m mnist_mlops.serving.app --model-uri models:/mnist-cnn@production --port 5001
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mnist_mlops.serving.preprocessing import InvalidInput, input_statistics
from mnist_mlops.serving.pyfunc import MnistDigitModel, to_pixels

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass
class LoadedModel:
    """The model being served and what ``/version`` says about it."""

    model: MnistDigitModel
    name: str
    version: str
    uri: str


def load_model(model_uri: str) -> LoadedModel:
    """Download a logged or registered model and open its ONNX session.

    Uses MLflow's current tracking URI and credentials (environment or caller's scope).
    """
    import mlflow

    name, version = model_uri, "unknown"
    if model_uri.startswith("models:/"):
        reference = model_uri.removeprefix("models:/")
        client = mlflow.MlflowClient()
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        elif "/" in reference:
            name, version = reference.split("/", 1)
    local = mlflow.artifacts.download_artifacts(model_uri, dst_path=tempfile.mkdtemp())
    python_model = mlflow.pyfunc.load_model(local).unwrap_python_model()
    return LoadedModel(python_model, name, str(version), model_uri)


class RequestLog:
    """Appends one JSON line per request, for monitoring to read later."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._file = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            line = json.dumps(record, separators=(",", ":"))
            with self._lock:
                self._file.write(line + "\n")


def _records_to_input(records: Any) -> tuple[Any, list[int | None]]:
    if not isinstance(records, list) or not records:
        raise InvalidInput('dataframe_records must be a non-empty list of {"image": ...} rows')
    if not all(isinstance(row, dict) and isinstance(row.get("image"), str) for row in records):
        raise InvalidInput('each dataframe_records row needs an "image": a base64 PNG or JPEG')
    import pandas as pd

    labels = [row.get("label") if isinstance(row.get("label"), int) else None for row in records]
    return pd.DataFrame({"image": [row["image"] for row in records]}), labels


def parse_request(body: dict[str, Any]) -> tuple[np.ndarray, list[int | None]]:
    """The pixels of a scoring request and the labels it may carry (feedback)."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    keys = [k for k in ("inputs", "instances", "dataframe_records") if k in body]
    if len(keys) != 1:
        raise InvalidInput(
            "the body must have exactly one of inputs, instances, dataframe_records; "
            f"got {sorted(body)}"
        )
    if keys[0] == "dataframe_records":
        frame, labels = _records_to_input(body["dataframe_records"])
        return to_pixels(frame), labels
    pixels = to_pixels(body[keys[0]])
    return pixels, _feedback_labels(body.get("params"), len(pixels))


def _feedback_labels(params: Any, rows: int) -> list[int | None]:
    """The true digits a client may send with pixel arrays: ``"params": {"labels": [...]}``."""
    labels = params.get("labels") if isinstance(params, dict) else None
    if labels is None:
        return [None] * rows
    if (
        not isinstance(labels, list)
        or len(labels) != rows
        or not all(isinstance(x, int) and 0 <= x <= 9 for x in labels)
    ):
        raise InvalidInput(f"params.labels must be a list of {rows} digits 0-9, one per image")
    return labels


def decode_json(raw: bytes) -> Any:
    """Parse a request body: orjson (10x faster on pixel arrays), else the standard library,
    which also reads NaN and Infinity so that validation can name them."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


UNAUTHORIZED = "missing or wrong bearer token"
LINGER_S = 2.0


def _error_payload(status: HTTPStatus, message: str) -> dict[str, str]:
    return {"error_code": status.name, "message": message}


def _failure(status: HTTPStatus, message: str) -> tuple[HTTPStatus, dict[str, str], list]:
    return status, _error_payload(status, message), []


class ScoringHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add 40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: ScoringServer

    def log_message(self, format: str, *args: Any) -> None:  # the request log records requests
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, _error_payload(status, message))

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def do_GET(self) -> None:
        if not self._authorized():
            self._error(HTTPStatus.UNAUTHORIZED, UNAUTHORIZED)
            return
        loaded = self.server.loaded
        if self.path in ("/ping", "/health"):
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/version":
            self._send(
                HTTPStatus.OK,
                {
                    "model_name": loaded.name,
                    "model_version": loaded.version,
                    "model_uri": loaded.uri,
                },
            )
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")

    def do_POST(self) -> None:
        started = time.perf_counter()
        status, payload, rows = self._score()
        # Logged before the answer goes out: a request its client saw answered is on record.
        self.server.request_log.write(
            {
                "time": datetime.now(UTC).isoformat(),
                "status": int(status),
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "batch_size": len(rows),
                "model_version": self.server.loaded.version,
                "rows": rows,
            }
        )
        self._send(status, payload)
        if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            self._discard_body()

    def _discard_body(self) -> None:
        """Read and drop the unread body of a refused request, for a few seconds at most: closing
        with data unread resets the connection, and the client, still sending, would see
        "connection reset" instead of the 413."""
        self.connection.settimeout(LINGER_S)
        deadline = time.monotonic() + LINGER_S
        try:
            while time.monotonic() < deadline and self.rfile.read1(1 << 16):
                pass
        except OSError:
            pass

    def _score(self) -> tuple[HTTPStatus, dict[str, Any], list[dict[str, Any]]]:
        """Read and score the request: the status, the answer and one log row per image."""
        length = self.headers.get("Content-Length")
        if self.path != "/invocations":
            self._drain(length)
            return _failure(HTTPStatus.NOT_FOUND, f"no route {self.path}")
        if not self._authorized():
            self._drain(length)
            return _failure(HTTPStatus.UNAUTHORIZED, UNAUTHORIZED)
        if length is None or not length.isdigit():
            self.close_connection = True
            return _failure(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if int(length) > self.server.max_body_bytes:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            return _failure(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes is over the limit of {self.server.max_body_bytes}",
            )
        raw = self.rfile.read(int(length))
        try:
            body = decode_json(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _failure(HTTPStatus.BAD_REQUEST, f"invalid JSON: {exc}")
        try:
            pixels, labels = parse_request(body)
            probabilities = self.server.loaded.model.probabilities(pixels)
        except InvalidInput as exc:
            return _failure(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception:
            logger.exception("scoring failed")
            return _failure(HTTPStatus.INTERNAL_SERVER_ERROR, "the model failed on this input")
        digits = probabilities.argmax(axis=1)
        answer = {
            "predictions": [
                {"digit": int(d), "probabilities": p.round(6).tolist()}
                for d, p in zip(digits, probabilities, strict=True)
            ]
        }
        rows = [
            {"digit": int(d), "confidence": float(p[d]), "label": label, **stats}
            for d, p, label, stats in zip(
                digits, probabilities, labels, input_statistics(pixels), strict=True
            )
        ]
        return HTTPStatus.OK, answer, rows

    def _drain(self, length: str | None) -> None:
        if length and length.isdigit() and int(length) <= self.server.max_body_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


class ScoringServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        loaded: LoadedModel,
        *,
        token: str | None = None,
        request_log: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(address, ScoringHandler)
        self.loaded, self.token, self.max_body_bytes = loaded, token, max_body_bytes
        self.request_log = RequestLog(request_log)


def serve(loaded: LoadedModel, host: str, port: int, **options: Any) -> None:
    """Serve until interrupted."""
    server = ScoringServer((host, port), loaded, **options)
    logger.info(
        "Serving %s version %s on http://%s:%d%s",
        loaded.name,
        loaded.version,
        host,
        server.server_address[1],
        " (bearer token required)" if options.get("token") else "",
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-uri", required=True, help="e.g. models:/mnist-cnn@production")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--request-log", help="JSON-lines file, one line per request")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(
        load_model(args.model_uri),
        args.host,
        args.port,
        token=os.environ.get("MNIST_SERVING_TOKEN") or None,
        request_log=args.request_log,
        max_body_bytes=args.max_body_bytes,
    )


if __name__ == "__main__":
    main()
