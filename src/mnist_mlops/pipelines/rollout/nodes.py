"""Nodes of the rollout pipeline, against the production workspace and the request log."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from mnist_mlops.pipelines.rollout.evidence import Decision, Evidence, collect_evidence, decide
from mnist_mlops.pipelines.rollout.parameters import RolloutParameters
from mnist_mlops.registry import (
    CANARY_SINCE_TAG,
    move_production,
    tag_status,
    version_with_alias,
)
from mnist_mlops.registry.records import version_string
from mnist_mlops.workspaces import Workspace, WorkspaceError

logger = logging.getLogger(__name__)

CLAIM_TAG = "mnist.rollout_claim"  # on the registered model: the run about to move aliases
CLAIM_SETTLE_S = 1.0  # between writing a claim and reading it back


class RolloutState(BaseModel):
    """The aliases as the evidence was read: a decision moves them only if they still hold."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    production: str | None
    challenger: str | None
    canary_since: datetime | None  # the challenger's ``mnist.canary_since``: evidence from then


def read_state(production: Workspace, rollout: RolloutParameters) -> RolloutState:
    """Which versions hold ``production`` and the challenger alias, and since when."""
    name = rollout.model_name
    current = version_with_alias(production, name, "production")
    challenger = version_with_alias(production, name, rollout.challenger_alias)
    since = challenger.tags.get(CANARY_SINCE_TAG) if challenger is not None else None
    state = RolloutState(
        name=name,
        alias=rollout.challenger_alias,
        production=version_string(current.version) if current is not None else None,
        challenger=version_string(challenger.version) if challenger is not None else None,
        canary_since=datetime.fromisoformat(since) if since else None,
    )
    logger.info("%s: production %s, %s %s", name, state.production, state.alias, state.challenger)
    return state


class Gathered(BaseModel):
    """The evidence, or none when there is no challenger (Kedro saves no bare None)."""

    model_config = ConfigDict(frozen=True)

    evidence: Evidence | None


def gather_evidence(request_log: Iterable[dict[str, Any]], state: RolloutState) -> Gathered:
    """Both versions' figures since the challenger became the canary."""
    if state.challenger is None or state.production is None:
        return Gathered(evidence=None)
    evidence = collect_evidence(request_log, state.production, state.challenger, state.canary_since)
    return Gathered(evidence=evidence)


def decide_rollout(gathered: Gathered, rollout: RolloutParameters) -> Decision:
    """Promote, roll back or wait (``none`` when there is no challenger to judge)."""
    evidence = gathered.evidence
    if evidence is None:
        return Decision(action="none", reasons=["no challenger"], missing_requests=0)
    decision = decide(evidence, rollout)
    logger.info(
        "Rollout of version %s: %s%s",
        evidence.challenger.version,
        decision.action,
        f" ({'; '.join(decision.reasons)})" if decision.reasons else "",
    )
    return decision


def apply_decision(
    decision: Decision, state: RolloutState, gathered: Gathered, production: Workspace
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Move the aliases the decision calls for, if nobody moved them since they were read.

    MLflow has no registry lock: a run first claims the move (``_claim``), then reads the aliases
    again just before moving them, and if they changed (another rollout, a deploy, a person)
    nothing moves and the report says so.

    Returns:
        The evidence as metrics (for MLflow) and the report.
    """
    moved, note = _move_if_unchanged(decision, state, production)
    report = {
        "name": state.name,
        "decided_at": datetime.now(UTC).isoformat(),
        "action": decision.action,
        "moved": moved,
        "note": note,
        "reasons": decision.reasons,
        "missing_requests": decision.missing_requests,
        "state": state.model_dump(mode="json"),
        "evidence": _evidence_report(gathered.evidence),
    }
    return _metrics(gathered.evidence), report


def _move_if_unchanged(
    decision: Decision, state: RolloutState, production: Workspace
) -> tuple[bool, str]:
    """Whether the aliases moved, and the report's note saying what happened."""
    if decision.action not in ("promote", "rollback"):
        return False, _plan(decision, state)
    if not _claim(production, state.name):
        note = "another rollout run claimed the move at the same time: nothing moved"
    else:
        now = (
            _alias(production, state.name, "production"),
            _alias(production, state.name, state.alias),
        )
        if now == (state.production, state.challenger):
            (_promote if decision.action == "promote" else _roll_back)(production, state, decision)
            return True, _plan(decision, state)
        note = (
            f"aliases moved since they were read (now production {now[0]}, "
            f"{state.alias} {now[1]}): nothing moved"
        )
    logger.warning("%s", note)
    return False, note


def _claim(production: Workspace, name: str) -> bool:
    """Whether this run may move the aliases: it writes its own id on the registered model,
    waits ``CLAIM_SETTLE_S`` and reads it back. Of two runs writing at once, only the last
    writer reads its own id back; a run that comes later finds the aliases already moved."""
    mine = f"{uuid.uuid4().hex} {datetime.now(UTC).isoformat()}"
    try:
        _write_claim(production, name, mine)
    except WorkspaceError:
        # The tag's first two writes at once: MLflow inserts it twice and the second insert
        # breaks a unique constraint. The tag exists now, so writing again updates it.
        _write_claim(production, name, mine)
    time.sleep(CLAIM_SETTLE_S)
    with production.session() as client:
        return client.get_registered_model(name).tags.get(CLAIM_TAG) == mine


def _write_claim(production: Workspace, name: str, claim: str) -> None:
    with production.session() as client:
        client.set_registered_model_tag(name, CLAIM_TAG, claim)


def _plan(decision: Decision, state: RolloutState) -> str:
    if decision.action == "promote":
        return f"version {state.challenger} promoted to production (was {state.production})"
    if decision.action == "rollback":
        return f"version {state.challenger} rolled back: production stays {state.production}"
    if decision.action == "wait" and decision.missing_requests:
        return f"waiting: {decision.missing_requests} more challenger requests before promoting"
    if decision.action == "wait":
        return f"waiting: {'; '.join(decision.reasons)}"
    return f"no version holds the alias {state.alias}: nothing to decide"


def _alias(production: Workspace, name: str, alias: str) -> str | None:
    version = version_with_alias(production, name, alias)
    return version_string(version.version) if version is not None else None


def _promote(production: Workspace, state: RolloutState, decision: Decision) -> None:
    """``production`` to the challenger, ``previous-production`` to the old one; production
    moves before the canary alias goes, so that servers always have a version to answer."""
    name, challenger = state.name, str(state.challenger)
    with production.session() as client:
        move_production(client, name, challenger, state.production)
        client.delete_registered_model_alias(name, state.alias)
    logger.info("%s version %s is in production (rollout)", name, challenger)


def _roll_back(production: Workspace, state: RolloutState, decision: Decision) -> None:
    """The canary alias removed; the version tagged and its model card told why."""
    name, challenger = state.name, str(state.challenger)
    reason = "; ".join(decision.reasons)
    with production.session() as client:
        client.delete_registered_model_alias(name, state.alias)
    # "rejected: rollout: <reason>": deploy never picks it again unless deployment.version names it
    tag_status(production, name, challenger, "rejected", f"rollout: {reason}")
    logger.warning("%s version %s rolled back: %s", name, challenger, reason)


def _evidence_report(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    figures = evidence.model_dump()
    for role in ("production", "challenger"):
        version = getattr(evidence, role)
        figures[role].update(error_rate=version.error_rate, accuracy=version.accuracy)
    figures["shadow_agreement"] = evidence.shadow_agreement
    return figures


def _metrics(evidence: Evidence | None) -> dict[str, dict[str, float]]:
    figures = _evidence_report(evidence) or {}
    flat = {
        f"{role}_{key}": value
        for role in ("production", "challenger")
        for key, value in figures.get(role, {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    if figures.get("shadow_agreement") is not None:
        flat["shadow_agreement"] = figures["shadow_agreement"]
    return {name: {"value": float(value), "step": 0} for name, value in flat.items()}
