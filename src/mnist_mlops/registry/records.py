"""The records the registration and deploy nodes pass each other, validated where they are made.

MLflow declares model versions as strings, but its SQL store hands back integers from some calls
(``get_model_version_by_alias`` on SQLite and PostgreSQL), and ``deployment.version`` is an int
parameter: :data:`Version` is the one boundary where every version becomes the string MLflow's
API takes, so a record, a tag, a card or a log line never holds an int. The run summary and the
model card read these records by attribute, never by string key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def version_string(value: Any) -> str:
    """A model version as MLflow's API takes it: ``"3"`` from ``3``, ``"3"`` or ``3.0``."""
    if isinstance(value, bool):
        raise ValueError(f"a model version is a positive whole number, not {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"a model version is a positive whole number, not {value!r}")
    return str(int(text))


Version = Annotated[str, BeforeValidator(version_string)]


class Record(BaseModel):
    """Immutable, and refusing fields it does not know (a typo fails where it is made)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidate(Record):
    """The champion logged as a servable model in the training run, not yet registered."""

    model_uri: str
    model_id: str | None
    run_id: str
    fingerprint: str = Field(min_length=16)
    strategy: str
    strategy_run_id: str | None


class GateEvaluation(Record):
    """The registration gate's pass over the candidate: what it measured and compared with."""

    test_accuracy: float = Field(ge=0, le=1)
    per_class: dict[str, float]
    production_version: Version | None
    production_test_accuracy: float | None
    photo_images: int = Field(ge=0)
    photo_accuracy: float = Field(ge=0, le=1)
    photo_accuracy_by_category: dict[str, float]
    # For the model card: its figures come from this pass, not from another one.
    confusion_matrix: list[list[int]]
    misread: list[tuple[int, int]]  # (test image index, digit read)


class SandboxVersion(Record):
    """The candidate's version in the sandbox registry."""

    name: str
    version: Version
    run_id: str
    tags: dict[str, str]
    already_registered: bool


class PushedVersion(Record):
    """The copy of a sandbox version in the production registry."""

    name: str
    version: Version
    lineage: str
    already_pushed: bool


class DeployValidation(Record):
    """The version's figures when loaded from the production registry."""

    test_accuracy: float = Field(ge=0, le=1)
    photo_accuracy: float = Field(ge=0, le=1)
    photo_accuracy_by_category: dict[str, float]


class InfraReport(Record):
    """How the version's real scoring server started and answered."""

    ready_after_s: float
    requests: int = Field(ge=1)
    latency_p50_ms: float
    latency_max_ms: float


DeployAction = Literal["deploy", "rollback", "skip", "nothing", "canary"]


class DeployCandidate(Record):
    """What deploy does: ``deploy`` the version; or it already did its work: ``rollback``
    (production moved back), ``skip`` (deployment disabled), ``nothing`` (nothing new to deploy;
    ``reason`` says why). Each deploy node returns it with what it found added."""

    name: str
    action: DeployAction
    version: Version | None = None
    tags: dict[str, str] = {}
    reason: str = ""
    validation: DeployValidation | None = None
    infra: InfraReport | None = None

    @property
    def chosen(self) -> str:
        """The version being deployed (there is one whenever ``action`` is ``deploy``)."""
        if self.version is None:
            raise ValueError(f"no version was chosen to deploy (action {self.action})")
        return self.version


class DeploymentReport(Record):
    """What the deploy pipeline did, for the run summary and ``deployment_report.json``."""

    name: str
    action: DeployAction
    production: Version | None = None  # the version holding production afterwards
    previous_production: Version | None = None
    canary: Version | None = None  # deployment.mode=canary: the version now the canary
    reason: str = ""
    validation: DeployValidation | None = None
    infra: InfraReport | None = None
