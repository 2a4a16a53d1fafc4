"""The request log: one JSON line per scoring request, shared by all workers and servers.

Two forms, chosen by the path:

- a local file (``data/10_serving/requests.jsonl``): concurrent-log-handler rotates it by size
  under a file lock, so lines from several worker processes never interleave and none is lost at
  rotation (``requests.jsonl``, then ``requests.jsonl.1`` to ``.N``);
- a folder, local or in an object store (any fsspec URL ending in ``/``, e.g.
  ``gs://mnist-logs/requests/``): object stores cannot append, so each worker buffers its lines
  (logging's ``BufferingHandler``) and uploads them as a new part every ``flush_s`` seconds, when
  the buffer is full, and at shutdown (SIGTERM). Parts are named
  ``<UTC time>-<host>-<pid>-<tag>-<n>.jsonl``: any number of servers write side by side, and
  reading the parts in name order reads them in upload order.

Requests hand their line to a queue and one thread per worker writes them, so the event loop
never waits on the disk or the network. The thread writes a line as soon as it comes, then
rests ``WRITE_EVERY_S`` before it writes what queued meanwhile: under traffic a request seldom
wakes it (a wake-up per line was a thread switch per request).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import orjson
from concurrent_log_handler import ConcurrentRotatingFileHandler

logger = logging.getLogger(__name__)

PART_LINES = 5000  # lines a worker buffers at most before uploading a part
WRITE_EVERY_S = 0.25  # how long a line waits at most in its worker before it is written
_STOP = ""  # never a line (each is a JSON object): the writer's last


def is_folder(path: str) -> bool:
    """A log kept as parts in a folder (object stores), rather than one rotating file."""
    return path.endswith("/")


class PartUploader(logging.handlers.BufferingHandler):
    """Buffers log lines and writes each batch as a new object under ``folder``.

    A failed upload keeps the lines for the next try (up to ``10 * capacity`` lines: past that,
    the oldest are dropped and the loss is logged).
    """

    def __init__(self, folder: str, capacity: int = PART_LINES) -> None:
        super().__init__(capacity)
        self.fs, root = fsspec.core.url_to_fs(folder)
        self.folder = root.rstrip("/")
        self.fs.makedirs(self.folder, exist_ok=True)
        # The host and process, and a random tag for a process that opens the log twice.
        self.name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.parts = 0

    def flush(self) -> None:
        self.acquire()
        try:
            self._upload()
        finally:
            self.release()

    def _upload(self) -> None:
        if not self.buffer:
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = f"{self.folder}/{stamp}-{self.name}-{self.parts:06d}.jsonl"
        data = "".join(f"{record.getMessage()}\n" for record in self.buffer).encode()
        try:
            self.fs.pipe_file(path, data)
        except Exception as exc:  # the store is away: keep the lines, try again later
            overflow = len(self.buffer) - 10 * self.capacity
            if overflow > 0:
                del self.buffer[:overflow]
            logger.error("request log part not uploaded to %s: %r", path, exc)
            return
        self.parts += 1
        self.buffer.clear()


class RequestLog:
    """Appends request records to the log (nothing when ``path`` is None).

    Call ``close`` at shutdown: it writes (or uploads) what is still queued.
    """

    def __init__(self, path: str | None, max_bytes: int, backups: int, flush_s: float = 10) -> None:
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._handler: logging.Handler | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if not path:
            return
        if is_folder(path):
            self._handler = PartUploader(path)
            self._start(self._flush_every, self._handler, flush_s)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._handler = ConcurrentRotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        self._start(self._write_lines, self._handler)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _flush_every(self, handler: logging.Handler, seconds: float) -> None:
        while not self._stop.wait(seconds):
            handler.flush()

    def _write_lines(self, handler: logging.Handler) -> None:
        """Write what is queued whenever a line comes, at most every ``WRITE_EVERY_S``, until
        ``_STOP``; a record per line, so that rotation stays exact."""
        while True:
            lines = [self._queue.get()]  # sleeps until a line comes
            with contextlib.suppress(queue.Empty):
                while True:
                    lines.append(self._queue.get_nowait())
            for line in lines:
                if line == _STOP:
                    return
                handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
            time.sleep(WRITE_EVERY_S)  # lines queued meanwhile wake no one

    def write(self, record: dict[str, Any]) -> None:
        if self._handler is not None:
            self._queue.put(orjson.dumps(record).decode())

    def close(self) -> None:
        if self._handler is None:
            return
        self._stop.set()
        self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._handler.close()  # BufferingHandler.close flushes: the last part is uploaded
        self._handler = None
