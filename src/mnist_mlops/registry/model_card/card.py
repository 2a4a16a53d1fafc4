"""The content of a model card: figures only, validated, kept as ``model_card.json``.

Registration fills everything but ``deployment``; the push adds the production side of the
lineage; deploy sets ``deployment``, and only that. Pictures are files beside the card, named
here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CONFUSION_MATRIX_PICTURE = "confusion_matrix.png"
CONFUSED_PAIRS_PICTURE = "confused_pairs.png"  # one row of misread test images per pair


class _Figures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfusedPair(_Figures):
    """A digit read as another, and how often."""

    true: int = Field(ge=0, le=9)
    read: int = Field(ge=0, le=9)
    count: int = Field(ge=1)


class MnistAccuracy(_Figures):
    """MNIST test accuracy, overall and per digit, from one prediction pass."""

    images: int = Field(ge=1)
    accuracy: float = Field(ge=0, le=1)
    per_digit: dict[int, float]
    confusion_matrix: list[list[int]]  # rows: true digit, columns: digit read
    confused_pairs: list[ConfusedPair]


class PictureAccuracy(_Figures):
    """Accuracy on the report set (``data/01_raw/report_pictures/labels.csv``)."""

    images: int = Field(ge=1)
    accuracy: float = Field(ge=0, le=1)
    by_category: dict[str, float]


class Gate(_Figures):
    """The registration gate the version passed."""

    decision: str
    min_test_accuracy: float
    max_regression: float
    production_version: str | None
    production_test_accuracy: float | None


class VersionRef(_Figures):
    """A registered version in one workspace, and the run holding its artifacts."""

    registry: str  # display URI: never a password
    version: str
    run_id: str


class Lineage(_Figures):
    """Where the version came from: the sandbox version, the production copy, the commit."""

    sandbox: VersionRef
    production: VersionRef | None
    git_commit: str


class Deployment(_Figures):
    """What the deploy pipeline measured on the production version before staging it."""

    validated_at: str
    test_accuracy: float
    min_test_accuracy: float
    photo_accuracy: float
    min_photo_accuracy: float
    photo_accuracy_by_category: dict[str, float]


class StatusChange(_Figures):
    """A decision taken on the version after it was registered, and why (a rollback, a rejected
    canary), as its ``mnist.deploy_status`` tag says it."""

    at: str  # UTC, "%Y-%m-%d %H:%M UTC"
    status: str  # the tag's value before the colon: "rolled back", "rejected"
    reason: str


class ModelCard(_Figures):
    """One registered version's card."""

    name: str
    strategy: str
    architecture: str
    hyperparameters: dict[str, Any]
    training_metrics: dict[str, float]
    data_sha256: dict[str, str]
    data_images: dict[str, int]  # per split
    mnist: MnistAccuracy
    pictures: PictureAccuracy
    gate: Gate
    lineage: Lineage | None = None
    deployment: Deployment | None = None
    history: list[StatusChange] = []  # oldest first

    def picture_names(self) -> list[str]:
        """The files the card shows, in the order it shows them."""
        return [CONFUSION_MATRIX_PICTURE] + (
            [CONFUSED_PAIRS_PICTURE] if self.mnist.confused_pairs else []
        )
