"""uvicorn's httptools protocol with the limits uvicorn lacks, answering in JSON.

Measured against uvicorn 0.54 (no option for any of these): a client sending its headers one
byte at a time, or opening a connection and sending nothing, held it forever; headers have no
size limit; requests over its ``limit_concurrency`` and unparsable requests get plain-text
answers. This subclass adds a header deadline (the first request's and each keep-alive
request's), a header size limit (431), a URL size limit (414), a connection cap per worker
(503 on connect) and MLflow's JSON error shape for every refusal made before the app runs.

It also closes lingeringly. uvicorn closes a connection as soon as an answer says
``connection: close``, even when the client is still sending the request's body (a 413 for the
announced size, a 401): the kernel then resets the connection, and a client that reads only
once it has sent everything (Python's ``http.client``, measured with a body 6x the limit) gets
``ConnectionResetError`` or ``BrokenPipeError``, never its answer. An answer sent with
keep-alive before the body arrived (a 415, a 404) made uvicorn read and discard the rest for as
long as it came. Like nginx's lingering close, this class shuts its sending side
(the client reads the answer to its end), reads and discards what still arrives, up to
``max_linger_bytes`` within ``linger_timeout_s``, and closes; past either bound the client is
cut off as before. A lingering connection still counts against ``max_connections``.

Written against uvicorn 0.54 (pinned in pyproject.toml); ``tests/serving/test_uvicorn_internals.py``
fails when what this module relies on moves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from mnist_mlops.serving import metrics
from mnist_mlops.serving.settings import ServingLimits

MAX_URL_BYTES = 8 * 1024


def error_body(error_code: str, message: str) -> bytes:
    """MLflow's error shape, the only one the server answers with."""
    return orjson.dumps({"error_code": error_code, "message": message})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection, refused as soon as it breaks a limit of ``serving.limits``."""

    def __init__(self, *args: Any, limits: ServingLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_bytes = 0
        self._url_bytes = 0
        self._refusal: tuple[int, str, str] | None = None
        self._header_deadline: asyncio.TimerHandle | None = None
        # The connection's own transport; uvicorn's code sees a LingeringTransport around it.
        self._raw: asyncio.Transport | None = None
        self._linger_left: int | None = None  # bytes still to discard while lingering

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        # uvicorn's request cycle closes the connection with ``self.transport.close()`` once an
        # answer says ``connection: close``: the proxy makes that close linger when it must.
        super().connection_made(LingeringTransport(transport, self))  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "TEMPORARILY_UNAVAILABLE", "too many connections, retry later")
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        self._linger_left = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._linger_left is None:
            super().data_received(data)
            return
        self._linger_left -= len(data)  # discarded, never parsed
        if self._linger_left < 0:
            self._raw.close()  # type: ignore[union-attr]

    def on_response_complete(self) -> None:
        # Answered with keep-alive while the body still arrives (a 415, a 404): uvicorn would
        # discard the rest of the body for as long as it comes; lingering bounds that.
        if self._body_still_arriving():
            self.close_lingering()
        super().on_response_complete()

    def shutdown(self) -> None:
        if self._linger_left is not None:  # nothing in flight: the answer is sent
            self._raw.close()  # type: ignore[union-attr]
            return
        super().shutdown()

    @property
    def lingering(self) -> bool:
        return self._linger_left is not None

    def close_lingering(self) -> None:
        """Close, lingering if the client is still sending the body of an answered request."""
        limits, raw = self.limits, self._raw
        assert raw is not None
        if self.lingering or raw.is_closing():
            return
        if not (
            self._body_still_arriving() and limits.max_linger_bytes and limits.linger_timeout_s
        ):
            raw.close()
            return
        self._linger_left = limits.max_linger_bytes
        if raw.can_write_eof():
            raw.write_eof()  # after the answer: the client reads it to its end
        self.flow.resume_reading()  # uvicorn pauses reading past 64 KiB of unread body
        self.loop.call_later(limits.linger_timeout_s, raw.close)

    def _body_still_arriving(self) -> bool:
        cycle = self.cycle
        return (
            cycle is not None
            and cycle.response_complete
            and cycle.more_body
            and not cycle.disconnected
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = self._url_bytes = 0
        self._arm_header_deadline()  # a keep-alive request gets the same deadline

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > MAX_URL_BYTES:
            self._refusal = (414, "REQUEST_URI_TOO_LONG", f"URL over {MAX_URL_BYTES} bytes")
            raise ValueError("URL too long")  # stops the parser: data_received refuses
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.limits.max_header_bytes:
            message = f"headers over {self.limits.max_header_bytes} bytes"
            self._refusal = (431, "REQUEST_HEADER_FIELDS_TOO_LARGE", message)
            raise ValueError("headers too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """Every request uvicorn cannot parse (or this class stopped) gets a JSON answer."""
        status, code, message = self._refusal or (400, "BAD_REQUEST", "malformed HTTP request")
        self._refuse(status, code, message)

    def _refuse(self, status: int, error_code: str, message: str) -> None:
        self._disarm_header_deadline()
        metrics.ERRORS.labels(kind=error_code.lower()).inc()
        if self.transport.is_closing():
            return
        body = error_body(error_code, message)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self.transport.close()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(
            self.limits.header_timeout_s, self._headers_too_slow
        )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.cycle is None or self.cycle.response_complete:
            limit = self.limits.header_timeout_s
            self._refuse(408, "REQUEST_TIMEOUT", f"request headers not received within {limit} s")


class LingeringTransport:
    """A connection's transport as uvicorn sees it, except that ``close`` lingers (see
    :meth:`LimitedHttpToolsProtocol.close_lingering`) and a lingering connection is closing."""

    __slots__ = ("_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpToolsProtocol) -> None:
        self._transport, self._protocol = transport, protocol

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def close(self) -> None:
        self._protocol.close_lingering()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
