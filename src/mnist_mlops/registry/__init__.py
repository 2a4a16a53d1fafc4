"""Registry conventions shared by the registration, deploy and batch_predict pipelines."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mnist_mlops.registry.model_card import StatusChange
from mnist_mlops.registry.model_card.store import add_status_change
from mnist_mlops.registry.outcomes import NothingToRollBack
from mnist_mlops.registry.records import version_string
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)

LINEAGE_TAG = "mnist.lineage"
TEST_ACCURACY_TAG = "mnist.test_accuracy"
# SHA-256 of what a version serves (serving.pyfunc.fingerprint): one version per served model.
FINGERPRINT_TAG = "mnist.fingerprint"
# How long a new version may stay PENDING_REGISTRATION (MLflow's await_creation_for).
AWAIT_CREATION_S = 120


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model unless it exists."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def versions_with_fingerprint(
    client: MlflowClient, name: str, fingerprint: str
) -> list[ModelVersion]:
    """The versions of ``name`` tagged with ``fingerprint``, oldest first."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'"
    )
    return sorted(found, key=lambda version: int(version.version))


def version_with_alias(workspace: Workspace, name: str, alias: str) -> ModelVersion | None:
    """The model version holding ``alias``, or None when there is none (or no such model)."""
    with workspace.session() as client:
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise


STATUS_TAG = "mnist.deploy_status"  # production, canary, rejected: ..., rolled back: ...
# A challenger (deployment.mode=canary): its alias, since when it holds it, when it was promoted
# (by deploy or by the rollout pipeline; monitoring.rollback_window_h counts from then).
CANARY_ALIAS = "canary"
CANARY_SINCE_TAG = "mnist.canary_since"
PROMOTED_AT_TAG = "mnist.promoted_at"
# Statuses after which a version is deployed again only when deployment.version names it.
REFUSED_STATUSES = ("rejected", "rolled back")


def refused(version: ModelVersion) -> bool:
    """Whether deploy rejected the version or production was rolled back away from it."""
    return version.tags.get(STATUS_TAG, "").startswith(REFUSED_STATUSES)


def now_utc() -> str:
    """The time a registry decision is recorded with, as tags and cards show it."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc_iso() -> str:
    """The time a tag records for later comparison (``mnist.canary_since``, ``promoted_at``)."""
    return datetime.now(UTC).isoformat()


def move_production(client: MlflowClient, name: str, version: str, previous: str | None) -> None:
    """``production`` to ``version`` and ``previous-production`` to ``previous`` (the version
    it replaces), tagged as promoted now: deploy's direct promotion and the rollout's."""
    if previous is not None and previous != version:
        client.set_registered_model_alias(name, "previous-production", previous)
    client.set_registered_model_alias(name, "production", version)
    client.set_model_version_tag(name, version, STATUS_TAG, "production")
    # monitoring.rollback_window_h counts from here (automatic rollback)
    client.set_model_version_tag(name, version, PROMOTED_AT_TAG, utc_iso())


def tag_status(workspace: Workspace, name: str, version: str, status: str, reason: str) -> None:
    """Record a decision on the version: its ``mnist.deploy_status`` tag (``<status>: <reason>``,
    within MLflow's tag length) and, for refusals, its model card's history."""
    with workspace.session() as client:
        client.set_model_version_tag(name, version, STATUS_TAG, f"{status}: {reason}"[:500])
    add_status_change(
        workspace, name, version, StatusChange(at=now_utc(), status=status, reason=reason)
    )


@dataclass(frozen=True)
class Rollback:
    """Where a rollback moved ``production``: back to ``restored``, away from ``replaced``."""

    restored: str
    replaced: str | None


def roll_back(workspace: Workspace, name: str, reason: str) -> Rollback:
    """Move ``production`` back to ``previous-production``; the version it moves away from
    becomes ``previous-production``, tagged ``rolled back: <reason>`` with a card entry.

    Raises:
        NothingToRollBack: no version holds ``previous-production``.
    """
    previous = version_with_alias(workspace, name, "previous-production")
    current = version_with_alias(workspace, name, "production")
    if previous is None:
        raise NothingToRollBack(f"{name} has no previous-production version to roll back to")
    restored = version_string(previous.version)
    replaced = version_string(current.version) if current is not None else None
    with workspace.session() as client:
        client.set_registered_model_alias(name, "production", restored)
        if replaced is not None and replaced != restored:
            client.set_registered_model_alias(name, "previous-production", replaced)
    if replaced is not None and replaced != restored:
        tag_status(workspace, name, replaced, "rolled back", reason)
    logger.info("Rolled back %s: production is version %s again (was %s)", name, restored, replaced)
    return Rollback(restored=restored, replaced=replaced)
