"""The ``rollout`` parameters (``conf/base/parameters_rollout.yml``)."""

from __future__ import annotations

from pydantic import Field

from mnist_mlops.config.parameters import Parameters, Section


class RolloutThresholds(Parameters):
    """How much worse than production a challenger may be (each figure against production's
    over the same window)."""

    max_error_rate_increase: float = Field(ge=0, le=1)  # (5xx + failures) / requests
    max_latency_ratio: float = Field(ge=1)  # p99 scoring time, challenger / production
    min_shadow_agreement: float = Field(ge=0, le=1)  # same digit as production, shadowed images
    max_confidence_drop: float = Field(ge=0, le=1)  # mean probability of the predicted digit
    max_accuracy_drop: float = Field(ge=0, le=1)  # on labelled feedback
    min_labelled_images: int = Field(ge=1)  # per version, before live accuracy counts


class RolloutParameters(Section):
    """Which challenger is judged, and on how much evidence."""

    section = "rollout"

    model_name: str = Field(min_length=1)
    challenger_alias: str = Field(min_length=1)
    min_requests: int = Field(ge=1)  # challenger answers + shadowed requests before a promotion
    min_samples: int = Field(ge=1)  # before min_requests, a figure may roll back from this many
    thresholds: RolloutThresholds
