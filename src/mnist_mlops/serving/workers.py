"""The scoring server's workers start before the model is there.

Importing MLflow, which loading a logged model needs, costs each worker about 2 s of a core:
``serve`` starts the workers first, and looks the version up and downloads it (``FirstDownload``,
a thread of the command's process) while they import. The download, shared by all workers, is
described in ``first.json`` in the downloads folder (``first.failed`` if it failed); each
worker's app (``WorkerApp``) waits for it at start-up, then loads it, warms it and listens.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_mlops.serving import startup
from mnist_mlops.serving.app import AppConfig, create_app
from mnist_mlops.serving.model import Download, download
from mnist_mlops.serving.settings import ServingSettings

FIRST, FAILED = "first.json", "first.failed"
Message = MutableMapping[str, Any]  # an ASGI message, as Starlette types it


class ServingError(RuntimeError):
    """The server could not start."""


@dataclass(frozen=True)
class WorkerStart:
    """What every worker is started with (pickled into each worker process)."""

    settings: ServingSettings
    model_uri: str
    downloads: Path
    token: str | None = field(default=None, repr=False)
    parent: int = field(default_factory=os.getpid)  # the process that downloads

    def first_version(self) -> Download:
        """The first version, once downloaded; MLflow, which loads it, is imported meanwhile."""
        import mlflow.pyfunc  # noqa: F401

        done, failed = self.downloads / FIRST, self.downloads / FAILED
        while not done.exists():
            if failed.exists() or not alive(self.parent):
                raise ServingError("the first version was not downloaded: see the command's error")
            time.sleep(0.02)
        described = json.loads(done.read_text())
        return Download(
            Path(described["folder"]),
            Path(described["model_path"]),
            described["name"],
            described["version"],
        )


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (any process: a fork server's child is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class FirstDownload(threading.Thread):
    """Downloads the first version for every worker, in the background of the command."""

    def __init__(self, model_uri: str, downloads: Path) -> None:
        super().__init__(name="first-download", daemon=True)
        self.model_uri, self.downloads = model_uri, downloads
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            downloaded = download(self.model_uri, self.downloads)
        except BaseException as exc:  # the command raises it once the workers have stopped
            self.error = exc
            (self.downloads / FAILED).touch()
            return
        described = {
            "folder": str(downloaded.folder),
            "model_path": str(downloaded.model_path),
            "name": downloaded.name,
            "version": downloaded.version,
        }
        written = self.downloads / f"{FIRST}.partial"
        written.write_text(json.dumps(described))
        written.replace(self.downloads / FIRST)  # whole or absent, never half-written

    def raise_failure(self) -> None:
        """Raise the download's error, if it failed."""
        if self.error is not None:
            raise self.error


class WorkerApp:
    """A worker's ASGI app: the scoring app, made at start-up once the first version is there.

    uvicorn runs the lifespan's start-up before it listens, so no request comes before.
    """

    def __init__(self, start: WorkerStart) -> None:
        self.start = start
        self.app: Callable[..., Awaitable[None]] | None = None

    async def __call__(self, scope: Message, receive: Callable, send: Callable) -> None:
        if self.app is None:
            await self._start(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _start(self, scope: Message, receive: Callable, send: Callable) -> None:
        began = await receive()  # lifespan.startup
        try:
            first = await asyncio.to_thread(self.start.first_version)
        except ServingError as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        start = self.start
        self.app = create_app(
            AppConfig(start.settings, start.model_uri, first, start.downloads, start.token)
        )
        await self.app(scope, _replaying(began, receive), _timing(send))


def _replaying(message: Message, receive: Callable) -> Callable[[], Awaitable[Message]]:
    """``receive`` that gives ``message`` first (it was received already), then the rest."""
    pending = [message]

    async def replaying() -> Message:
        return pending.pop() if pending else await receive()

    return replaying


def _timing(send: Callable) -> Callable[[Message], Awaitable[None]]:
    """``send`` that logs the last start-up phase: the worker listens right after."""

    async def timing(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            startup.finish("listening")
        await send(message)

    return timing
