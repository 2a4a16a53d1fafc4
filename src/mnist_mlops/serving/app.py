"""The scoring app (Starlette), speaking MLflow's scoring protocol; one instance per worker.

``POST /invocations`` scores (see ``parsing`` for the accepted forms) and answers
``{"predictions": [{"digit": 7, "probabilities": [...]}]}`` (``NO_DIGIT`` in place of a picture
the model found no digit in); ``/ping``, ``/health``,
``/version``, ``/openapi.json`` and the page at ``/`` are open, ``/invocations`` and ``/metrics``
need the bearer token when one is set. Every refusal is JSON in MLflow's error shape.

A challenger (``serving.rollout``) answers a share of the requests (canary) and scores a share of
production's off the response path (shadow); every answer names its version in
``X-Model-Version``, and the request log and ``/metrics`` keep the evidence per version.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mnist_mlops.serving import metrics
from mnist_mlops.serving.challenger import (
    Challenger,
    Scored,
    ScoreFunction,
    Scoring,
    Traffic,
    confidences_of,
    digits_of,
)
from mnist_mlops.serving.model import Download, LoadedModel, ModelFollower, alias_of
from mnist_mlops.serving.parsing import ScoringRequest, TooLarge, parse_body
from mnist_mlops.serving.preprocessing import InvalidInput
from mnist_mlops.serving.request_log import RequestLog
from mnist_mlops.serving.settings import ServingLimits, ServingSettings
from mnist_mlops.serving.statistics import input_statistics

logger = logging.getLogger(__name__)

STATIC = Path(str(files("mnist_mlops.serving") / "static"))
OPENAPI = Path(str(files("mnist_mlops.serving") / "openapi.yml"))
CONTENT_TYPES = ("application/json", "text/csv")
VERSION_HEADER = "x-model-version"
MAX_MESSAGE = 200  # characters of a message that may quote the input
# A picture's answer when the served model found no digit in it (its prepared pixels are NaN).
NO_DIGIT = {"digit": None, "probabilities": None, "error": "no digit found"}


@dataclass(frozen=True)
class AppConfig:
    """What every worker is started with (pickled into each worker process)."""

    settings: ServingSettings
    model_uri: str
    first: Download
    downloads: Path
    token: str | None = field(default=None, repr=False)


class Refusal(Exception):
    """A request answered with an error; ``close`` when its body may still be unread."""

    def __init__(self, status: int, error_code: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.error_code, self.close = status, error_code, close


def error(status: int, error_code: str, message: str, close: bool = False) -> Response:
    """MLflow's error shape; the message is cut short so that it never echoes much input."""
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    headers = {"connection": "close"} if close else None
    body = orjson.dumps({"error_code": error_code, "message": message})
    return Response(body, status, headers, media_type="application/json")


def json_response(payload: Any, status: int = 200) -> Response:
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status, media_type="application/json")


class Scorer:
    """The endpoints of one worker, around the model it follows."""

    def __init__(self, config: AppConfig) -> None:
        self.config, self.limits = config, config.settings.limits
        settings = config.settings
        self.follower = ModelFollower(
            config.model_uri,
            config.first,
            settings.poll_s,
            config.downloads,
            threads=settings.onnx_threads,
        )
        self.request_log = RequestLog(
            settings.request_log,
            settings.request_log_max_bytes,
            settings.request_log_backups,
            settings.request_log_flush_s,
        )
        self.traffic = Traffic()
        self.challenger = Challenger(
            settings.rollout,
            _challenger_uri(config),
            self.follower,
            self.request_log.write,
            _score,
            self.traffic,
        )

    def authorize(self, request: Request) -> None:
        """Refuse from the headers alone (the body is never read) unless the token is right."""
        token = self.config.token
        if not token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise Refusal(401, "UNAUTHORIZED", "missing or wrong bearer token", close=True)

    async def ping(self, request: Request) -> Response:
        """200: a worker serves only once its model is loaded (see ``lifespan``)."""
        return json_response({"status": "ok"})

    async def version(self, request: Request) -> Response:
        loaded, challenger = self.follower.loaded, self.challenger.follower.current
        return json_response(
            {
                "model_name": loaded.name,
                "model_version": loaded.version,
                "model_uri": loaded.uri,
                "challenger": None
                if challenger is None
                else {"model_version": challenger.version, "model_uri": challenger.uri},
            }
        )

    async def prometheus(self, request: Request) -> Response:
        self.authorize(request)
        body, content_type = metrics.exposition()
        return Response(body, headers={"content-type": content_type})

    async def invocations(self, request: Request) -> Response:
        started = time.perf_counter()
        self.authorize(request)
        try:
            parsed = await self._parse(request)
            # One model per request, even if a swap happens meanwhile.
            answered, challenger = self.follower.loaded, self.challenger.follower.current
            scored = await self.challenger.answer(parsed, _scorer(parsed), challenger, answered)
        except Exception as exc:
            self._record_failure(exc, started)
            raise
        probabilities = scored.probabilities.astype(np.float64)  # 0.1, not float32's 0.1000001
        digits = digits_of(probabilities)
        record = self._record(parsed, scored, probabilities, digits, started)
        if scored.model is answered and challenger is not None:
            self.challenger.shadow(parsed, challenger, record, digits)
        else:
            self.request_log.write(record)
        predictions = [
            {"digit": d, "probabilities": p.tolist()} if d is not None else dict(NO_DIGIT)
            for d, p in zip(digits, probabilities.round(6), strict=True)
        ]
        if parsed.return_prepared:
            for prediction, prepared in zip(predictions, scored.pixels, strict=True):
                found = prediction["digit"] is not None
                prediction["prepared"] = prepared.round(2).tolist() if found else None
        response = json_response({"predictions": predictions})
        response.headers[VERSION_HEADER] = scored.model.version
        return response

    async def _parse(self, request: Request) -> ScoringRequest:
        mime_type = _mime_type(request.headers.get("content-type"))
        raw = await read_body(request, self.limits)
        try:
            return parse_body(raw, mime_type, self.limits.max_image_pixels)
        except TooLarge as exc:
            raise Refusal(413, "REQUEST_ENTITY_TOO_LARGE", str(exc)) from None
        except InvalidInput as exc:
            raise Refusal(400, "BAD_REQUEST", str(exc)) from None

    def _record(
        self,
        parsed: ScoringRequest,
        scored: Scored,
        probabilities: np.ndarray,
        digits: list[int | None],
        started: float,
    ) -> dict[str, Any]:
        """Count the images and digits (``none`` for no digit found); the request's log line
        (rows per image; no digit found is a null digit and confidence)."""
        metrics.IMAGES.inc(len(digits))
        for digit, count in Counter(str(d).lower() for d in digits).items():
            metrics.DIGITS.labels(digit=digit).inc(count)
        confidences = confidences_of(probabilities, digits)
        metrics.count_version(
            scored.model.version, "answered", scored.seconds, digits, confidences, parsed.labels
        )
        rows = [
            {"digit": d, "confidence": c, "label": label, **stats}
            for d, c, label, stats in zip(
                digits, confidences, parsed.labels, input_statistics(scored.pixels), strict=True
            )
        ]
        record = {
            "time": datetime.now(UTC).isoformat(),
            "status": 200,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "scoring_ms": round(scored.seconds * 1000, 3),
            "batch_size": len(rows),
            "model_version": scored.model.version,
            "role": "production" if scored.model is self.follower.current else "canary",
            "rows": rows,
        }
        if scored.challenger_error:
            record["challenger_error"] = scored.challenger_error
        return record

    def _record_failure(self, exc: Exception, started: float) -> None:
        """Log a refused (4xx) or failed (5xx) scoring request, with the version it was for."""
        if isinstance(exc, ClientDisconnect):
            return
        status, code = (exc.status, exc.error_code) if isinstance(exc, Refusal) else (500, "")
        version = self.follower.loaded.version
        if status >= 500:
            metrics.VERSION_ERRORS.labels(version=version, role="answered").inc()
        self.request_log.write(
            {
                "time": datetime.now(UTC).isoformat(),
                "status": status,
                "error_code": code or "INTERNAL_ERROR",
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "batch_size": 0,
                "model_version": version,
                "rows": [],
            }
        )

    async def index(self, request: Request) -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            raise HTTPException(404, "no page here yet")
        return FileResponse(page)

    async def openapi(self, request: Request) -> Response:
        return json_response(_openapi())


def _challenger_uri(config: AppConfig) -> str | None:
    """``models:/<name>@<challenger alias>`` when production is an alias, else no challenger."""
    followed = alias_of(config.model_uri)
    return f"models:/{followed[0]}@{config.settings.rollout.challenger_alias}" if followed else None


def _scorer(parsed: ScoringRequest) -> ScoreFunction:
    # Photos cost milliseconds to decode: off the event loop. Pixel arrays are validated in
    # well under a millisecond, less than a hop to the thread pool and back would add.
    return _score_in_thread if parsed.images else _score_inline


def _score(model: Any, parsed: ScoringRequest) -> tuple[np.ndarray, np.ndarray]:
    """Pixels by the served model's own preprocessing, and its probabilities."""
    try:
        pixels = model.prepare(parsed.model_input)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # The model's preprocessing is its own pickled copy: its InvalidInput is a ValueError.
        raise Refusal(400, "BAD_REQUEST", str(exc)) from None
    if len(parsed.labels) != len(pixels):
        raise Refusal(400, "BAD_REQUEST", f"{len(parsed.labels)} labels for {len(pixels)} images")
    return pixels, model.probabilities(pixels)


async def _score_in_thread(model: Any, parsed: ScoringRequest) -> tuple[float, Scoring]:
    return await run_in_threadpool(_timed_score, model, parsed)


async def _score_inline(model: Any, parsed: ScoringRequest) -> tuple[float, Scoring]:
    return _timed_score(model, parsed)


def _timed_score(model: Any, parsed: ScoringRequest) -> tuple[float, Scoring]:
    started = time.perf_counter()
    scoring = _score(model, parsed)
    return time.perf_counter() - started, scoring


def _mime_type(content_type: str | None) -> str:
    """The body's media type; 415 for anything MLflow's scoring server would refuse."""
    mime_type, *parameters = [part.strip() for part in (content_type or "").split(";")]
    charset = [p.split("=", 1)[1].lower() for p in parameters if p.lower().startswith("charset=")]
    if mime_type.lower() not in CONTENT_TYPES or charset not in ([], ["utf-8"]):
        raise Refusal(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type must be application/json or text/csv (UTF-8), got {content_type!r}",
        )
    return mime_type.lower()


async def read_body(request: Request, limits: ServingLimits) -> bytes:
    """The body, refused with 413 past ``max_body_bytes`` (before reading it when its length
    is announced) and with 408 when it does not arrive within ``body_timeout_s``."""
    declared = request.headers.get("content-length")
    too_large = f"body over the limit of {limits.max_body_bytes} bytes"
    if declared is not None and int(declared) > limits.max_body_bytes:
        raise Refusal(413, "REQUEST_ENTITY_TOO_LARGE", too_large, close=True)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise Refusal(413, "REQUEST_ENTITY_TOO_LARGE", too_large, close=True)
                chunks.append(chunk)
    except TimeoutError:
        message = f"request body not received within {limits.body_timeout_s} s"
        raise Refusal(408, "REQUEST_TIMEOUT", message, close=True) from None
    return b"".join(chunks)


@cache
def _openapi() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text())


# Exception handlers: each answers in the scoring protocol's error format and counts the error.
async def _refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    metrics.ERRORS.labels(kind=exc.error_code.lower()).inc()
    return error(exc.status, exc.error_code, str(exc), exc.close)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
    metrics.ERRORS.labels(kind=code.lower()).inc()
    response = error(exc.status_code, code, f"{exc.detail}: {request.method} {request.url.path}")
    response.headers.update(exc.headers or {})
    return response


async def _disconnected(request: Request, exc: Exception) -> Response:
    metrics.ERRORS.labels(kind="client_disconnected").inc()
    logger.info("client %s disconnected before sending its whole request", request.client)
    return error(400, "BAD_REQUEST", "client disconnected")  # never sent: nobody is there


async def _internal(request: Request, exc: Exception) -> Response:
    metrics.ERRORS.labels(kind="internal").inc()
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error(500, "INTERNAL_ERROR", "the server failed on this request")


def create_app(config: AppConfig) -> MeasuredApp:
    """The app of one worker: its routes, its model follower and its request log."""
    scorer = Scorer(config)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        # uvicorn accepts connections only after this: a worker takes no request before its
        # model is loaded, and connections queue for the workers that are ready.
        await scorer.follower.start()
        await scorer.challenger.start()
        tasks = [_logged_task(scorer.follower.follow())]
        tasks += [_logged_task(work) for work in scorer.challenger.background()]
        yield
        for task in tasks:
            task.cancel()
        scorer.challenger.close()  # logs what still waited for the shadow, unshadowed
        scorer.request_log.close()

    app = Starlette(
        routes=[
            Route("/invocations", scorer.invocations, methods=["POST"]),
            Route("/ping", scorer.ping, methods=["GET"]),
            Route("/health", scorer.ping, methods=["GET"]),
            Route("/version", scorer.version, methods=["GET"]),
            Route("/metrics", scorer.prometheus, methods=["GET"]),
            Route("/openapi.json", scorer.openapi, methods=["GET"]),
            Route("/", scorer.index, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        ],
        exception_handlers={
            Refusal: _refusal,
            HTTPException: _http_error,
            ClientDisconnect: _disconnected,
            Exception: _internal,
        },
        lifespan=lifespan,
    )
    return MeasuredApp(app, lambda: scorer.follower.current, scorer.traffic)


class MeasuredApp:
    """Counts every answer by endpoint and status, times it, and names the production version
    in ``X-Model-Version`` when the endpoint did not name another, and keeps the worker's
    ``traffic`` (pure ASGI: no per-request middleware objects on the hot path)."""

    ENDPOINTS = frozenset(
        ["/invocations", "/ping", "/health", "/version", "/metrics", "/openapi.json", "/"]
    )

    def __init__(
        self, app: Starlette, production: Callable[[], LoadedModel | None], traffic: Traffic
    ) -> None:
        self.app, self.production, self.traffic = app, production, traffic

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in self.ENDPOINTS else "other"
        status = 500

        async def send_and_count(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = _with_version(message, self.production())
            await send(message)

        self.traffic.started()
        try:
            await self.app(scope, receive, send_and_count)
        finally:
            self.traffic.ended()
            metrics.REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
            metrics.LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)


def _with_version(message: dict[str, Any], production: LoadedModel | None) -> dict[str, Any]:
    headers = message.get("headers", [])
    if production is None or any(name == VERSION_HEADER.encode() for name, _ in headers):
        return message
    return {
        **message,
        "headers": [*headers, (VERSION_HEADER.encode(), production.version.encode())],
    }


def _logged_task(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A background task whose failure is logged (a follower or the shadow stopping)."""
    task = asyncio.create_task(work)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("following the alias stopped", exc_info=task.exception())
