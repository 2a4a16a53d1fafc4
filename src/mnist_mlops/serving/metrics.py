"""Prometheus metrics of the scoring server, correct across its worker processes.

``kedro serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts: each worker then
writes its samples to files there, and ``/metrics`` in any worker adds up all of them
(prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

PREFIX = "mnist_serving"

REQUESTS = Counter(f"{PREFIX}_requests", "HTTP requests answered", ["endpoint", "status"])
LATENCY = Histogram(
    f"{PREFIX}_request_seconds",
    "Time from the request's headers to its answer",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IMAGES = Counter(f"{PREFIX}_images", "Images scored")
DIGITS = Counter(f"{PREFIX}_predicted_digits", "Predictions by digit", ["digit"])
ERRORS = Counter(f"{PREFIX}_errors", "Requests refused or failed, by kind", ["kind"])
MODEL_VERSION = Gauge(
    f"{PREFIX}_model_version",
    "Registry version each worker serves",
    multiprocess_mode="liveall",
)
SWAPS = Counter(f"{PREFIX}_model_swaps", "New model versions swapped in")
FAILED_SWAPS = Counter(f"{PREFIX}_model_swaps_failed", "New model versions that failed to load")


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker in Prometheus' text format, and its content type."""
    if folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _forget_dead_workers(Path(folder))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _forget_dead_workers(folder: Path) -> None:
    """Drop the per-process gauges of workers uvicorn has replaced: only live ones count."""
    for path in folder.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(folder))
