"""The ``monitoring`` parameters (``conf/base/parameters_monitor.yml``)."""

from __future__ import annotations

from pydantic import Field

from mnist_mlops.parameters import Parameters, Section


class Thresholds(Parameters):
    """Crossing any one sets ``retrain: true`` in the report."""

    max_intensity_drift: float = Field(ge=0, le=1)  # Kolmogorov-Smirnov statistic
    max_ink_drift: float = Field(ge=0, le=1)
    max_class_mix_drift: float = Field(ge=0, le=1)  # total variation distance
    min_mean_confidence: float = Field(ge=0, le=1)
    min_accuracy: float = Field(ge=0, le=1)  # on labelled feedback
    min_labelled_images: int = Field(ge=0)


class MonitoringParameters(Section):
    """Which requests are compared with which training images, and when to alarm."""

    section = "monitoring"

    window_images: int = Field(ge=0)  # 0 = all
    min_images: int = Field(ge=0)
    reference_images: int = Field(ge=1)
    seed: int
    thresholds: Thresholds
