"""Nodes of the monitor pipeline: what the server saw lately, against what the model learnt."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import ks_2samp

from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters, Thresholds
from mnist_mlops.serving.statistics import input_statistics

logger = logging.getLogger(__name__)

ROW_COLUMNS = ["digit", "confidence", "label", "mean_intensity", "ink_fraction"]
REQUEST_KEYS = {"time", "status", "rows", "model_version"}


def recent_rows(
    request_log: Iterable[dict[str, Any]], monitoring: MonitoringParameters
) -> pd.DataFrame:
    """One row per image the server scored, the ``window_images`` most recent (0 = all).

    The log is read one request at a time: only the window is ever held in memory.

    Raises:
        ValueError: when the log holds no scored image, or is not a request log.
    """
    recent: deque[dict[str, Any]] = deque(maxlen=monitoring.window_images or None)
    for request in request_log:
        missing = REQUEST_KEYS - request.keys()
        if missing:
            raise ValueError(f"not a request log of the scoring server: no {sorted(missing)}")
        if request["status"] != 200:
            continue
        context = {"time": str(request["time"]), "model_version": str(request["model_version"])}
        recent.extend({**context, **row} for row in request["rows"])
    if not recent:
        raise ValueError("the request log holds no scored image: nothing to monitor yet")
    return pd.DataFrame(list(recent), columns=["time", "model_version", *ROW_COLUMNS])


def describe_training_images(
    train_images: np.ndarray, train_labels: np.ndarray, monitoring: MonitoringParameters
) -> pd.DataFrame:
    """Input statistics of a seeded sample of the training images, with their labels."""
    rng = np.random.default_rng(monitoring.seed)
    size = min(monitoring.reference_images, len(train_images))
    sample = rng.choice(len(train_images), size=size, replace=False)
    reference = pd.DataFrame(input_statistics(train_images[sample].astype(np.float32)))
    reference["label"] = train_labels[sample]
    return reference


def _class_mix(digits: pd.Series) -> np.ndarray:
    counts = np.bincount(digits.dropna().astype(int), minlength=10)
    return counts / max(1, counts.sum())


def _ks(recent: pd.Series, reference: pd.Series) -> float:
    """Kolmogorov-Smirnov statistic over the images that had a digit (0 when none had one)."""
    recent = recent.dropna()
    return float(ks_2samp(recent, reference)[0]) if len(recent) else 0.0


def _drift_metrics(recent: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """Input drift (Kolmogorov-Smirnov), class-mix drift (total variation), mean confidence,
    the fraction of pictures with no digit found and, on labelled feedback, accuracy.

    A picture with no digit found (a null digit) has no input statistics or confidence: it
    counts in ``no_digit_fraction``, and as wrong in ``feedback_accuracy``.
    """
    labelled = recent.dropna(subset=["label"])
    found = recent.dropna(subset=["digit"])
    metrics = {
        "images": float(len(recent)),
        "intensity_drift": _ks(recent["mean_intensity"], reference["mean_intensity"]),
        "ink_drift": _ks(recent["ink_fraction"], reference["ink_fraction"]),
        "class_mix_drift": 0.5
        * np.abs(_class_mix(recent["digit"]) - _class_mix(reference["label"])).sum(),
        "mean_confidence": found["confidence"].mean() if len(found) else 0.0,
        "no_digit_fraction": 1 - len(found) / len(recent),
        "labelled_images": float(len(labelled)),
    }
    if len(labelled):
        metrics["feedback_accuracy"] = (labelled["digit"] == labelled["label"]).mean()
    return metrics


def _crossed(metrics: dict[str, float], thresholds: Thresholds) -> list[str]:
    """The metrics past their threshold; accuracy only on enough labelled images."""
    checks = [
        ("intensity_drift", metrics["intensity_drift"] > thresholds.max_intensity_drift),
        ("ink_drift", metrics["ink_drift"] > thresholds.max_ink_drift),
        ("class_mix_drift", metrics["class_mix_drift"] > thresholds.max_class_mix_drift),
        ("mean_confidence", metrics["mean_confidence"] < thresholds.min_mean_confidence),
    ]
    if metrics["labelled_images"] >= thresholds.min_labelled_images:
        checks.append(("feedback_accuracy", metrics["feedback_accuracy"] < thresholds.min_accuracy))
    return [name for name, crossed in checks if crossed]


def assess_drift(
    recent: pd.DataFrame, reference: pd.DataFrame, monitoring: MonitoringParameters
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Compare recent inputs and predictions with the training data; decide on retraining.

    Drift of the inputs is the Kolmogorov-Smirnov statistic of mean intensity and ink fraction;
    drift of the predictions is the total variation distance between the predicted class mix and
    the training labels'. Low mean confidence and, on labelled feedback, low accuracy alarm too.
    Fewer than ``min_images`` recent images raise no alarm: too little evidence.

    Returns:
        The metrics (for MLflow) and the report, whose ``retrain`` says whether to retrain.
    """
    thresholds = monitoring.thresholds
    metrics = _drift_metrics(recent, reference)
    enough = len(recent) >= monitoring.min_images
    alarms = _crossed(metrics, thresholds) if enough else []
    report = {
        "retrain": bool(alarms),
        "alarms": alarms,
        "enough_evidence": enough,
        "model_versions": sorted(recent["model_version"].unique().tolist()),
        "window": {"first": recent["time"].iloc[0], "last": recent["time"].iloc[-1]},
        "metrics": {name: round(float(value), 6) for name, value in metrics.items()},
        "thresholds": thresholds.model_dump(),
    }
    if not enough:
        logger.warning(
            "Only %d recent images (monitoring.min_images=%d): no alarm raised",
            len(recent),
            monitoring.min_images,
        )
    elif alarms:
        logger.warning("Monitoring alarm on %s: retraining is due", ", ".join(alarms))
    else:
        logger.info("Monitoring: no drift, the served model holds")
    return {name: {"value": float(value), "step": 0} for name, value in metrics.items()}, report


def plot_monitoring(recent: pd.DataFrame, reference: pd.DataFrame) -> Figure:
    """Recent inputs and predictions against the training data, in four panels."""
    figure = Figure(figsize=(13, 3.5), layout="constrained")
    intensity, ink, mix, confidence = figure.subplots(1, 4)
    found = recent.dropna(subset=["digit"])  # a picture with no digit found has no statistics
    for axes, column in ((intensity, "mean_intensity"), (ink, "ink_fraction")):
        bins = np.histogram_bin_edges(pd.concat([found[column], reference[column]]), bins=30)
        axes.hist(reference[column], bins=bins, density=True, alpha=0.5, label="training")
        axes.hist(found[column], bins=bins, density=True, alpha=0.5, label="recent requests")
        axes.set(title=column.replace("_", " "), ylabel="density")
        axes.legend()
    digits = np.arange(10)
    mix.bar(digits - 0.2, _class_mix(reference["label"]), 0.4, label="training labels")
    mix.bar(digits + 0.2, _class_mix(recent["digit"]), 0.4, label="predicted")
    mix.set(title="class mix", xticks=digits, ylabel="share")
    mix.legend()
    confidence.hist(found["confidence"], bins=np.linspace(0, 1, 21), color="C2")
    confidence.set(title="confidence of recent predictions", ylabel="images")
    return figure
