"""Run the scoring app under uvicorn, in one process or several workers sharing one socket.

    python -m mnist_mlops.serving.server --model-uri models:/mnist-cnn@production --port 5001

``kedro serve`` runs the same ``serve`` with the ``serving`` parameters of a Kedro environment.
"""

from __future__ import annotations

import logging
import logging.config
import os
import shutil
import signal
import sys
import tempfile
from functools import partial
from pathlib import Path

import click
import uvicorn
from uvicorn.supervisors import Multiprocess

# Imported here, before serve() sets PROMETHEUS_MULTIPROC_DIR for the workers: this process
# (the supervisor) keeps its own metrics in memory instead of in a file /metrics would read.
from mnist_mlops.serving.app import AppConfig, create_app
from mnist_mlops.serving.model import download, load
from mnist_mlops.serving.protocol import LimitedHttpToolsProtocol
from mnist_mlops.serving.settings import ServingSettings, validate_settings

logger = logging.getLogger(__name__)

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

    The first version is downloaded and loaded here, once, so that a model that cannot load
    stops the command at once with its error instead of leaving workers that never get ready.
    """
    downloads = Path(tempfile.mkdtemp(prefix="mnist-serving-"))
    if settings.worker_count > 1:
        # Before any worker exists: prometheus-client chooses its multiprocess mode at import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(downloads / "metrics")
        (downloads / "metrics").mkdir()
    try:
        _run(settings, model_uri, token, downloads)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def _run(settings: ServingSettings, model_uri: str, token: str | None, downloads: Path) -> None:
    first = download(model_uri, downloads)
    load(first, model_uri, settings.onnx_threads)
    limits, workers = settings.limits, settings.worker_count
    config = uvicorn.Config(
        partial(create_app, AppConfig(settings, model_uri, first, downloads, token)),
        factory=True,
        host=settings.host,
        port=settings.port,
        http=partial(LimitedHttpToolsProtocol, limits=limits),
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
        "Serving %s (version %s) on http://%s:%d with %d worker(s)%s; downloads in %s",
        model_uri,
        first.version,
        settings.host,
        settings.port,
        workers,
        ", bearer token required" if token else "",
        downloads,
    )
    if workers == 1:
        # uvicorn re-raises SIGTERM once it has shut down gracefully: exit 0 instead of dying.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.Server(config).run()
    else:
        Multiprocess(config, sockets=[config.bind_socket()]).run()


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
    serve(validate_settings(params), model_uri, os.environ.get("MNIST_SERVING_TOKEN") or None)


if __name__ == "__main__":
    main()
