"""Run the scoring app under uvicorn, in one process or several workers sharing one socket.

    python -m mnist_mlops.serving.server --model-uri models:/mnist-cnn@production --port 5001

``kedro serve`` runs the same ``serve`` with the ``serving`` parameters of a Kedro environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import click
import uvicorn
from uvicorn import _subprocess
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess, multiprocess

# Imported here, before serve() sets PROMETHEUS_MULTIPROC_DIR for the workers: this process
# (the supervisor) keeps its own metrics in memory instead of in a file /metrics would read.
from mnist_mlops.serving import startup
from mnist_mlops.serving.protocol import LimitedHttpToolsProtocol
from mnist_mlops.serving.settings import ServingSettings, validate_settings
from mnist_mlops.serving.workers import (
    FirstDownload,
    ServingError,
    WorkerApp,
    WorkerStart,
    alive,
)

logger = logging.getLogger(__name__)

# What the fork server imports for every worker (see ``_workers_forked_from_a_server``); the
# pictures' preprocessing imports the last three at its first picture: 0.2 s of that request.
PRELOADED = ("mlflow.pyfunc", "onnxruntime", "PIL.Image", "scipy.ndimage", "scipy.spatial")
# The supervisor pings each worker every this many of its 0.5 s rounds (see ``Supervisor``).
PING_ROUNDS = 10

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": LOG_FORMAT}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "mnist_mlops": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def serve(settings: ServingSettings, model_uri: str, token: str | None = None) -> None:
    """Serve ``model_uri`` until SIGTERM or Ctrl-C, then finish the requests in flight.

    The workers start at once; this process looks the version up and downloads it for all of
    them meanwhile (see :mod:`~mnist_mlops.serving.workers`). A version that cannot be
    downloaded or loaded stops the command with its error.
    """
    startup.mark_origin()
    downloads = Path(tempfile.mkdtemp(prefix="mnist-serving-"))
    if settings.worker_count > 1:
        # Before any worker exists: prometheus-client chooses its multiprocess mode at import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(downloads / "metrics")
        (downloads / "metrics").mkdir()
    try:
        _run(settings, WorkerStart(settings, model_uri, downloads, token))
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def _run(settings: ServingSettings, start: WorkerStart) -> None:
    limits, workers = settings.limits, settings.worker_count
    config = uvicorn.Config(
        partial(WorkerApp, start),
        factory=True,
        lifespan="on",  # WorkerApp makes the scoring app at start-up
        host=settings.host,
        port=settings.port,
        # A protocol factory: uvicorn calls it as it calls a protocol class (its annotation
        # names the class alone).
        http=partial(LimitedHttpToolsProtocol, limits=limits),  # type: ignore[arg-type]
        loop="uvloop",
        workers=workers,
        backlog=limits.backlog,
        timeout_keep_alive=limits.keepalive_timeout_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=limits.shutdown_grace_s,  # type: ignore[arg-type]
        server_header=False,
        # uvicorn kills a worker that does not answer its ping within this, and a worker answers
        # only once it has imported MLflow: on a busy machine (load average 24 on 2 cores) that
        # took over 60 s, and workers were killed and restarted in a loop. A crashed worker is
        # still replaced at once; only a hung one waits this long.
        timeout_worker_healthcheck=300,
        access_log=False,
        log_config=LOG_CONFIG,
    )
    logger.info(
        "Serving %s on http://%s:%d with %d worker(s)%s; downloads in %s",
        start.model_uri,
        settings.host,
        settings.port,
        workers,
        ", bearer token required" if start.token else "",
        start.downloads,
    )
    first = FirstDownload(start.model_uri, start.downloads)
    if workers == 1:
        _serve_here(config, first)
    else:
        _supervise(config, first)


def _serve_here(config: uvicorn.Config, first: FirstDownload) -> None:
    """One worker: this process."""
    # uvicorn re-raises SIGTERM once it has shut down gracefully: exit 0 instead of dying.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    first.start()
    try:
        QuietServer(config).run()
    except SystemExit as exc:
        if exc.code == STARTUP_FAILURE:
            first.raise_failure()
            raise ServingError(
                "the server could not start: its error is in the log above"
            ) from None
        raise


def _supervise(config: uvicorn.Config, first: FirstDownload) -> None:
    """Worker processes sharing one socket, restarted if they die."""
    supervisor = Supervisor(config, sockets=[config.bind_socket()])
    with _workers_forked_from_a_server(), _workers_skip_the_main_script(), _quiet_workers():
        first.start()
        supervisor.run()  # uvicorn stops every worker once one failed to start
    # A SIGTERM to the whole process group also ends the fork server, and uvicorn, which asks it
    # whether a worker exited, then no longer waits for them: they finish their requests alone.
    _wait_for_exit(
        [worker.pid for worker in supervisor.processes], config.timeout_graceful_shutdown
    )
    first.raise_failure()
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise ServingError("a worker could not start: its error is in the log above")


class QuietServer(uvicorn.Server):
    """uvicorn's server, ticking once a second instead of ten times, and told at once to exit.

    uvicorn's main loop wakes every 0.1 s to see whether it should exit, and every tenth time
    refreshes the Date header. Measured idle (two workers, 20 s), the server spent 3.0 ms of CPU
    a second, each worker's loop thread 1-1.5 ms of it; with this tick and the ``Supervisor``'s
    fewer pings, 1.0 ms: 0.1 ms less for each request at 20 requests/s. Here the same tick comes
    once a second (the Date header is refreshed as often as before), and the signals that stop
    the server wake the loop at once.
    """

    _wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # on_tick refreshes the Date header on tens
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if self._wake is not None:  # a signal handler: it runs on the loop's thread
            self._loop.call_soon_threadsafe(self._wake.set)


class QuietWorker(multiprocess.Process):
    """A worker process of uvicorn's supervisor, serving with ``QuietServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = QuietServer(config=self.config)
        return self._server


@contextmanager
def _quiet_workers() -> Iterator[None]:
    """Have uvicorn's supervisor start (and restart) ``QuietWorker`` processes."""
    original, multiprocess.Process = multiprocess.Process, QuietWorker  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]


class Supervisor(Multiprocess):
    """uvicorn's supervisor, pinging each worker every ``PING_ROUNDS`` rounds (5 s) instead of
    every round (0.5 s).

    Each ping wakes a thread in the worker, which takes the interpreter from the event loop to
    answer: four a second for two workers (``QuietServer`` says what an idle server spends). A
    worker that exits is still seen (and replaced) within a round, without a ping; pings only
    find hung workers, which ``timeout_worker_healthcheck`` (300 s) gives far longer anyway.
    """

    rounds = 0

    def keep_subprocess_alive(self) -> None:
        self.rounds += 1
        exited = any(not worker.process.is_alive() for worker in self.processes)
        if exited or self.rounds % PING_ROUNDS == 0:
            super().keep_subprocess_alive()


def _wait_for_exit(pids: list[int | None], grace_s: float | None) -> None:
    """Until the processes ``pids`` have exited, at most their grace period and 5 s more."""
    deadline = time.monotonic() + (grace_s or 0) + 5
    while time.monotonic() < deadline and any(pid and alive(pid) for pid in pids):
        time.sleep(0.05)


@contextmanager
def _workers_forked_from_a_server() -> Iterator[None]:
    """Start the workers from a fork server that has imported MLflow, once for all of them.

    uvicorn starts each worker with multiprocessing's spawn: a new interpreter that imports
    MLflow (about 1.5 s of a core) to load the logged model. A fork server (a fresh, single
    threaded interpreter) imports it once and forks each worker from there in milliseconds,
    which also restarts a crashed worker fast. Only side-effect-free modules are preloaded: the
    metrics, which prometheus-client files per process, are made in each worker. The server
    starts with the first worker, once every variable the workers need is set: they inherit
    its environment, not this process's.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        yield  # Windows: spawn, as uvicorn does
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED))
    spawn, _subprocess.spawn = _subprocess.spawn, context  # type: ignore[assignment]
    try:
        yield
    finally:
        _subprocess.spawn = spawn


@contextmanager
def _workers_skip_the_main_script() -> Iterator[None]:
    """Spare each worker a second run of the command's main script.

    multiprocessing (spawn, and the fork server's children alike) runs the parent's main script
    again in each worker (as ``__mp_main__``) unless the main module has a spec named
    ``__main__``. Under ``kedro serve``
    that script is Kedro's whole CLI: 0.5-1 s of a core per worker, for nothing a worker uses
    (what a worker unpickles comes from this package). The script is given such a spec.
    """
    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is not None:
        yield  # run as a module (python -m ...): spawn imports that module, which is lean
        return
    main.__spec__ = ModuleSpec("__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


@click.command()
@click.option("--model-uri", required=True, help="e.g. models:/mnist-cnn@production")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5001, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="0 = one per core")
@click.option("--request-log", default=None, help="JSON-lines file, one line per scored request")
@click.option("--max-body-bytes", type=int, default=None, help="serving.limits.max_body_bytes")
@click.option("--poll-s", type=float, default=None, help="seconds between looks at the alias")
def main(
    model_uri: str,
    host: str,
    port: int,
    workers: int,
    request_log: str | None,
    max_body_bytes: int | None,
    poll_s: float | None,
) -> None:
    """Serve one model over REST with the default limits; the token is MNIST_SERVING_TOKEN."""
    params: dict = {"host": host, "port": port, "workers": workers, "request_log": request_log}
    if max_body_bytes is not None:
        params["limits"] = {"max_body_bytes": max_body_bytes}
    if poll_s is not None:
        params["poll_s"] = poll_s
    logging.config.dictConfig(LOG_CONFIG)
    startup.mark_origin()
    startup.phase("cli")
    serve(validate_settings(params), model_uri, os.environ.get("MNIST_SERVING_TOKEN") or None)


if __name__ == "__main__":
    main()
