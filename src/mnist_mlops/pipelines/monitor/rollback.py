"""Automatic rollback after a promotion: the monitor pipeline's guard on a new production.

A production version promoted less than ``monitoring.rollback_window_h`` ago (its
``mnist.promoted_at`` tag) is judged on its own live figures since then; when one crosses
``monitoring.rollback.*`` and ``monitoring.auto_rollback`` is on, ``production`` goes back to
``previous-production`` (the registry's rollback, as deploy's: the version is tagged and its model
card told why), and the report asks for retraining.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters, RollbackThresholds
from mnist_mlops.pipelines.rollout.evidence import VersionEvidence, version_evidence
from mnist_mlops.registry import PROMOTED_AT_TAG, roll_back, version_with_alias
from mnist_mlops.registry.records import version_string
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)


def rollback_breaches(evidence: VersionEvidence, limits: RollbackThresholds) -> list[str]:
    """The thresholds a version's live figures cross (none before ``min_requests`` answers)."""
    if evidence.answers < limits.min_requests:
        return []
    found = []
    if evidence.error_rate > limits.max_error_rate:
        found.append(f"error rate {evidence.error_rate:.3f} (at most {limits.max_error_rate})")
    p99 = evidence.p99_scoring_ms
    if p99 is not None and p99 > limits.max_p99_scoring_ms:
        found.append(f"p99 scoring time {p99:.1f} ms (at most {limits.max_p99_scoring_ms})")
    confidence = evidence.mean_confidence
    if confidence is not None and confidence < limits.min_mean_confidence:
        found.append(f"mean confidence {confidence:.3f} (at least {limits.min_mean_confidence})")
    accuracy = evidence.accuracy
    if evidence.labelled >= limits.min_labelled_images and (accuracy or 0) < limits.min_accuracy:
        found.append(
            f"live accuracy {accuracy:.3f} on {evidence.labelled} labelled images "
            f"(at least {limits.min_accuracy})"
        )
    return found


def guard_promotion(
    request_log: Iterable[dict[str, Any]],
    drift_report: dict[str, Any],
    production: Workspace,
    monitoring: MonitoringParameters,
) -> dict[str, Any]:
    """The drift report with its ``rollback`` section: what the guard saw and did."""
    if not monitoring.auto_rollback:
        return {**drift_report, "rollback": {"checked": False, "why": "auto_rollback is off"}}
    name = monitoring.model_name
    promoted = _recently_promoted(production, name, monitoring.rollback_window_h)
    if promoted is None:
        why = f"no production version promoted in the last {monitoring.rollback_window_h} h"
        return {**drift_report, "rollback": {"checked": False, "why": why}}
    version, since = promoted
    evidence = version_evidence(request_log, version, since)
    reasons = rollback_breaches(evidence, monitoring.rollback)
    section = {"checked": True, "version": version, "since": since.isoformat()}
    section |= {"reasons": reasons, "evidence": evidence.model_dump()}
    if not reasons:
        return {**drift_report, "rollback": {**section, "rolled_back": False}}
    back_to = _roll_back(production, name, "; ".join(reasons))
    alarms = [*drift_report["alarms"], "auto_rollback"]
    rolled = {**section, "rolled_back": True, "production": back_to}
    return {**drift_report, "retrain": True, "alarms": alarms, "rollback": rolled}


def _recently_promoted(
    production: Workspace, name: str, window_h: float
) -> tuple[str, datetime] | None:
    """The production version and when it was promoted, if less than ``window_h`` ago."""
    current = version_with_alias(production, name, "production")
    promoted = current.tags.get(PROMOTED_AT_TAG) if current is not None else None
    if current is None or not promoted:
        return None
    since = datetime.fromisoformat(promoted)
    if datetime.now(UTC) - since > timedelta(hours=window_h):
        return None
    return version_string(current.version), since


def _roll_back(production: Workspace, name: str, reason: str) -> str:
    """Deploy's rollback: the version left is tagged ``rolled back: monitoring: <reason>`` and
    its model card says so."""
    moved = roll_back(production, name, f"monitoring: {reason}")
    logger.warning("%s version %s rolled back by monitoring: %s", name, moved.replaced, reason)
    return moved.restored
