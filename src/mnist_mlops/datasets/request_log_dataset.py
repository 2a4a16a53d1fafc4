"""A Kedro dataset for the scoring server's request log, rotated files included."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import AbstractDataset, DatasetError, get_protocol_and_path

logger = logging.getLogger(__name__)


class RequestLogDataset(AbstractDataset[None, Iterator[dict[str, Any]]]):
    """The JSON-lines request log (``requests.jsonl``) and its rotated files
    (``requests.jsonl.1`` newest to ``.N`` oldest), read lazily, oldest request first; or, for a
    ``filepath`` ending in ``/`` (an object store's folder), every part the scoring servers
    uploaded there, in name (upload time) order.

    ``load`` returns an iterator: a node keeps only what it needs (a window of recent images)
    instead of the whole log in memory. Read-only: the scoring server writes it.

    Example catalog entry::

        serving_request_log:
          type: mnist_mlops.datasets.RequestLogDataset
          filepath: data/10_serving/requests.jsonl  # or gs://mnist-logs/requests/
    """

    def __init__(
        self,
        *,
        filepath: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath)
        self._fs = fsspec.filesystem(protocol, **{**(credentials or {}), **(fs_args or {})})
        self._path = str(PurePosixPath(path))
        self._folder = filepath.endswith("/")
        self._protocol = protocol
        self.metadata = metadata

    def files(self) -> list[str]:
        """The log's files, oldest first: ``.N`` ... ``.1``, then the current one (a folder's
        parts in name order)."""
        if self._folder:
            self._fs.invalidate_cache(self._path)  # other servers upload parts all the time
            return sorted(self._fs.glob(f"{self._path}/*.jsonl"))
        rotated = [
            name for name in self._fs.glob(f"{self._path}.*") if name.rsplit(".", 1)[1].isdigit()
        ]
        rotated.sort(key=lambda name: -int(name.rsplit(".", 1)[1]))
        current = [self._path] if self._fs.exists(self._path) else []
        return [*rotated, *current]

    def load(self) -> Iterator[dict[str, Any]]:
        files = self.files()
        if not files:
            raise DatasetError(
                f"no request log at {self._path}: the scoring server has not scored anything "
                "yet, or MNIST_REQUEST_LOG points elsewhere"
            )
        return self._records(files)

    def _records(self, files: list[str]) -> Iterator[dict[str, Any]]:
        for name in files:
            with self._fs.open(name, "r", encoding="utf-8") as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        yield json.loads(line)
                    except ValueError:  # e.g. the last line of a server killed mid-write
                        logger.warning("%s line %d is not JSON: skipped", name, number)

    def save(self, data: None) -> None:
        raise DatasetError("the request log is written by the scoring server, not by Kedro")

    def _exists(self) -> bool:
        return bool(self.files())

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._path, "protocol": self._protocol}
