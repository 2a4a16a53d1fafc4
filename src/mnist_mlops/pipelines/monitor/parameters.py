"""The ``monitoring`` parameters (``conf/base/parameters_monitor.yml``)."""

from __future__ import annotations

from pydantic import Field

from mnist_mlops.config.parameters import Parameters, Section


class Thresholds(Parameters):
    """Crossing any one sets ``retrain: true`` in the report."""

    max_intensity_drift: float = Field(ge=0, le=1)  # Kolmogorov-Smirnov statistic
    max_ink_drift: float = Field(ge=0, le=1)
    max_class_mix_drift: float = Field(ge=0, le=1)  # total variation distance
    min_mean_confidence: float = Field(ge=0, le=1)
    min_accuracy: float = Field(ge=0, le=1)  # on labelled feedback
    min_labelled_images: int = Field(ge=0)


class RollbackThresholds(Parameters):
    """A production version promoted less than ``rollback_window_h`` ago is rolled back when its
    live figures since the promotion cross any one (with ``auto_rollback`` on)."""

    max_error_rate: float = Field(ge=0, le=1)  # 5xx / scoring requests
    max_p99_scoring_ms: float = Field(gt=0)
    min_mean_confidence: float = Field(ge=0, le=1)
    min_accuracy: float = Field(ge=0, le=1)  # on labelled feedback
    min_requests: int = Field(ge=1)  # answered since the promotion, before judging
    min_labelled_images: int = Field(ge=1)


class MonitoringParameters(Section):
    """Which requests are compared with which training images, and when to alarm."""

    section = "monitoring"

    window_images: int = Field(ge=0)  # 0 = all
    min_images: int = Field(ge=0)
    reference_images: int = Field(ge=1)
    seed: int
    thresholds: Thresholds
    model_name: str = Field(min_length=1)
    auto_rollback: bool
    rollback_window_h: float = Field(gt=0)
    rollback: RollbackThresholds
