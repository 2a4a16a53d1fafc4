"""The request log: one JSON line per scored request, bounded by size, shared by all workers.

concurrent-log-handler rotates by size under a file lock, so lines from several worker processes
never interleave and none is lost at rotation (``requests.jsonl``, then ``requests.jsonl.1`` to
``.N``). Requests hand their line to a queue; one thread per worker does the locked writes, so
the event loop never waits on the disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
from pathlib import Path
from typing import Any

import orjson
from concurrent_log_handler import ConcurrentRotatingFileHandler


class RequestLog:
    """Appends request records to a size-rotated JSON-lines file (nothing when ``path`` is None).

    Call ``close`` at shutdown: it writes what is still queued.
    """

    def __init__(self, path: str | None, max_bytes: int, backups: int) -> None:
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener: logging.handlers.QueueListener | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handler = ConcurrentRotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            self._listener = logging.handlers.QueueListener(self._queue, handler)
            self._listener.start()

    def write(self, record: dict[str, Any]) -> None:
        if self._listener is not None:
            line = orjson.dumps(record).decode()
            self._queue.put(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()  # writes every queued record first
            for handler in self._listener.handlers:
                handler.close()
            self._listener = None
