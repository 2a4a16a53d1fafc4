"""Prometheus metrics of the scoring server, correct across its worker processes.

``kedro serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker starts: each worker then
writes its samples to files there, and ``/metrics`` in any worker adds up all of them
(prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    "Registry version each worker serves, by role (production, canary)",
    ["role"],
    multiprocess_mode="liveall",
)
SWAPS = Counter(f"{PREFIX}_model_swaps", "New model versions swapped in")
FAILED_SWAPS = Counter(f"{PREFIX}_model_swaps_failed", "New model versions that failed to load")


# Per version (label ``version``, the registry version): the evidence a rollout decides on.
# ``role`` is ``answered`` for the version that answered the client, ``shadow`` for a challenger
# scoring a copy of the request off the response path.
VERSION_REQUESTS = Counter(
    f"{PREFIX}_version_requests", "Scoring requests by version and role", ["version", "role"]
)
VERSION_ERRORS = Counter(
    f"{PREFIX}_version_errors",
    "Scoring requests a version failed (5xx, or a challenger's failure or timeout)",
    ["version", "role"],
)
VERSION_LATENCY = Histogram(
    f"{PREFIX}_version_seconds",
    "Time a version took to score a request (parsing excluded)",
    ["version", "role"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
VERSION_CONFIDENCE = Histogram(
    f"{PREFIX}_version_confidence",
    "Probability of the predicted digit, per image",
    ["version", "role"],
    buckets=(0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0),
)
VERSION_LABELLED = Counter(
    f"{PREFIX}_version_labelled_images", "Images with a feedback label", ["version", "role"]
)
VERSION_CORRECT = Counter(
    f"{PREFIX}_version_correct_images", "Labelled images read right", ["version", "role"]
)
SHADOW_PAIRS = Counter(
    f"{PREFIX}_shadow_images", "Images scored by production and a shadowed challenger", ["version"]
)
SHADOW_AGREEMENT = Counter(
    f"{PREFIX}_shadow_agreeing_images",
    "Shadowed images where the challenger read production's digit",
    ["version"],
)
SHADOW_DROPPED = Counter(
    f"{PREFIX}_shadow_dropped", "Requests not shadowed because the shadow queue was full"
)


def count_version(
    version: str,
    role: str,
    seconds: float,
    digits: Sequence[int | None],
    confidences: Sequence[float | None],
    labels: Sequence[int | None],
) -> None:
    """A version's evidence for one request: latency, confidences and feedback labels (an
    image without a digit found counts as labelled and not read right)."""
    VERSION_REQUESTS.labels(version=version, role=role).inc()
    VERSION_LATENCY.labels(version=version, role=role).observe(seconds)
    histogram = VERSION_CONFIDENCE.labels(version=version, role=role)
    for confidence in confidences:
        if confidence is not None:
            histogram.observe(confidence)
    labelled = [(d, label) for d, label in zip(digits, labels, strict=True) if label is not None]
    if labelled:
        VERSION_LABELLED.labels(version=version, role=role).inc(len(labelled))
        correct = sum(d is not None and d == int(label) for d, label in labelled)
        VERSION_CORRECT.labels(version=version, role=role).inc(correct)


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
