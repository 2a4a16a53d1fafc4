"""The evidence a rollout decides on, and the decision: pure functions of the request log.

Each scoring request is one line of the log (see ``serving.request_log``): the version that
answered (``model_version``), its scoring time (``scoring_ms``), one row per image (digit,
confidence, feedback label), a canary's failure covered by production (``challenger_error``)
and, for a shadowed request, the challenger's time and, per row, its digit and confidence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from mnist_mlops.pipelines.rollout.parameters import RolloutParameters

Z95 = 1.96  # the 95% Wilson interval
NO_CHALLENGER = ""  # a version name no log line carries


class VersionEvidence(BaseModel):
    """What one version did over the window."""

    model_config = ConfigDict(frozen=True)

    version: str
    requests: int  # scorings attempted: answers, shadowed requests, failures
    errors: int  # 5xx, canary failures production covered, failed shadow scorings
    answers: int  # requests this version answered the client
    shadowed: int  # requests it scored off the response path
    p99_scoring_ms: float | None
    mean_confidence: float | None
    labelled: int
    correct: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


class Evidence(BaseModel):
    """Production and challenger over the same window, and their shadowed pairs of digits."""

    model_config = ConfigDict(frozen=True)

    production: VersionEvidence
    challenger: VersionEvidence
    shadow_images: int
    shadow_agreeing: int

    @property
    def challenger_requests(self) -> int:
        """Requests the challenger answered or shadowed: what ``min_requests`` counts."""
        return self.challenger.answers + self.challenger.shadowed

    @property
    def shadow_agreement(self) -> float | None:
        return self.shadow_agreeing / self.shadow_images if self.shadow_images else None


@dataclass
class _Tally:
    version: str
    requests: int = 0
    errors: int = 0
    answers: int = 0
    shadowed: int = 0
    scoring_ms: list[float] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    labelled: int = 0
    correct: int = 0

    def read(self, digits: Iterable[tuple[Any, Any, Any]]) -> None:
        """Rows as (digit, confidence, label); a row without a digit (no digit found) has no
        confidence, and with a label it counts as read wrong."""
        for digit, confidence, label in digits:
            if digit is not None:
                self.confidences.append(float(confidence))
            if label is not None:
                self.labelled += 1
                self.correct += digit is not None and int(digit) == int(label)

    def freeze(self) -> VersionEvidence:
        p99 = float(np.percentile(self.scoring_ms, 99)) if self.scoring_ms else None
        confidence = float(np.mean(self.confidences)) if self.confidences else None
        return VersionEvidence(
            version=self.version,
            requests=self.requests,
            errors=self.errors,
            answers=self.answers,
            shadowed=self.shadowed,
            p99_scoring_ms=p99,
            mean_confidence=confidence,
            labelled=self.labelled,
            correct=self.correct,
        )


def collect_evidence(
    records: Iterable[dict[str, Any]], production: str, challenger: str, since: datetime | None
) -> Evidence:
    """Tally every request logged since ``since`` for the two versions (others are ignored)."""
    tallies = {production: _Tally(production), challenger: _Tally(challenger)}
    pairs = [0, 0]  # shadowed images, agreeing
    for record in records:
        if since is not None and datetime.fromisoformat(record["time"]) < since:
            continue
        answered = tallies.get(str(record["model_version"]))
        if record["status"] != 200:
            if answered is not None and record["status"] >= 500:
                answered.requests += 1
                answered.errors += 1
            continue
        if answered is not None:
            _count_answer(answered, record)
        failed = record.get("challenger_error") or {}
        if str(failed.get("model_version")) == challenger:
            tallies[challenger].requests += 1
            tallies[challenger].errors += 1
        shadow = record.get("shadow") or {}
        if str(shadow.get("model_version")) == challenger:
            _count_shadow(tallies[challenger], record, shadow, pairs)
    return Evidence(
        production=tallies[production].freeze(),
        challenger=tallies[challenger].freeze(),
        shadow_images=pairs[0],
        shadow_agreeing=pairs[1],
    )


def version_evidence(
    records: Iterable[dict[str, Any]], version: str, since: datetime | None
) -> VersionEvidence:
    """One version's figures since ``since`` (what monitoring judges after a promotion)."""
    return collect_evidence(records, version, NO_CHALLENGER, since).production


def _count_answer(tally: _Tally, record: dict[str, Any]) -> None:
    tally.requests += 1
    tally.answers += 1
    tally.scoring_ms.append(float(record.get("scoring_ms", record["latency_ms"])))
    tally.read((row["digit"], row["confidence"], row.get("label")) for row in record["rows"])


def _count_shadow(
    tally: _Tally, record: dict[str, Any], shadow: dict[str, Any], pairs: list[int]
) -> None:
    if shadow.get("dropped"):
        return
    tally.requests += 1
    if "error" in shadow:
        tally.errors += 1
        return
    tally.shadowed += 1
    if not shadow.get("contended"):  # timed beside production's work: not comparable
        tally.scoring_ms.append(float(shadow["latency_ms"]))
    rows = record["rows"]
    tally.read(
        (row.get("shadow_digit"), row.get("shadow_confidence"), row.get("label")) for row in rows
    )
    both = [row for row in rows if None not in (row["digit"], row.get("shadow_digit"))]
    pairs[0] += len(both)
    pairs[1] += sum(row["shadow_digit"] == row["digit"] for row in both)


def wilson(successes: int, total: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (0, 1 when there is no sample)."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = p + Z95**2 / (2 * total)
    spread = Z95 * math.sqrt(p * (1 - p) / total + Z95**2 / (4 * total**2))
    scale = 1 + Z95**2 / total
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


Action = Literal["promote", "rollback", "wait", "none"]  # none: no challenger


class Decision(BaseModel):
    """What the evidence says: ``reasons`` name each breached threshold, with the figures."""

    model_config = ConfigDict(frozen=True)

    action: Action
    reasons: list[str]
    missing_requests: int  # challenger requests still needed before a promotion


def breaches(evidence: Evidence, params: RolloutParameters, sure: bool) -> list[str]:
    """The thresholds the challenger breaches. ``sure``: only where even the favourable end of
    the 95% interval does, on at least ``min_samples`` samples (before ``min_requests``)."""
    limits, found = params.thresholds, []
    challenger, production = evidence.challenger, evidence.production

    def enough(samples: int) -> bool:
        return samples >= (params.min_samples if sure else 1)

    if enough(challenger.requests):
        low = wilson(challenger.errors, challenger.requests)[0] if sure else challenger.error_rate
        if low - production.error_rate > limits.max_error_rate_increase:
            found.append(
                f"error rate {challenger.error_rate:.3f} against production's "
                f"{production.error_rate:.3f} (at most +{limits.max_error_rate_increase})"
            )
    if enough(evidence.shadow_images):
        agreement = evidence.shadow_agreement or 0.0
        high = wilson(evidence.shadow_agreeing, evidence.shadow_images)[1] if sure else agreement
        if high < limits.min_shadow_agreement:
            found.append(
                f"shadow agreement {agreement:.3f} on {evidence.shadow_images} images "
                f"(at least {limits.min_shadow_agreement})"
            )
    found += _accuracy_breach(evidence, params, sure)
    found += _latency_and_confidence_breaches(
        evidence, params, enough(challenger.answers + challenger.shadowed)
    )
    return found


def _accuracy_breach(evidence: Evidence, params: RolloutParameters, sure: bool) -> list[str]:
    limits = params.thresholds
    challenger, production = evidence.challenger, evidence.production
    if min(challenger.labelled, production.labelled) < limits.min_labelled_images:
        return []
    accuracy = challenger.accuracy or 0.0
    high = wilson(challenger.correct, challenger.labelled)[1] if sure else accuracy
    if high < (production.accuracy or 0.0) - limits.max_accuracy_drop:
        return [
            f"live accuracy {accuracy:.3f} on {challenger.labelled} labelled images against "
            f"production's {production.accuracy:.3f} (at most -{limits.max_accuracy_drop})"
        ]
    return []


def _latency_and_confidence_breaches(
    evidence: Evidence, params: RolloutParameters, enough: bool
) -> list[str]:
    limits = params.thresholds
    challenger, production = evidence.challenger, evidence.production
    if not enough:
        return []
    found = []
    if challenger.p99_scoring_ms is not None and production.p99_scoring_ms:
        ratio = challenger.p99_scoring_ms / production.p99_scoring_ms
        if ratio > limits.max_latency_ratio:
            found.append(
                f"p99 scoring time {challenger.p99_scoring_ms:.2f} ms, {ratio:.1f}x production's "
                f"{production.p99_scoring_ms:.2f} ms (at most {limits.max_latency_ratio}x)"
            )
    if challenger.mean_confidence is not None and production.mean_confidence is not None:
        drop = production.mean_confidence - challenger.mean_confidence
        if drop > limits.max_confidence_drop:
            found.append(
                f"mean confidence {challenger.mean_confidence:.3f} against production's "
                f"{production.mean_confidence:.3f} (at most -{limits.max_confidence_drop})"
            )
    return found


def decide(evidence: Evidence, params: RolloutParameters) -> Decision:
    """Roll back on a breach (a sure one before ``min_requests``), promote on none after it
    once what the challenger reads was judged, wait otherwise."""
    missing = max(0, params.min_requests - evidence.challenger_requests)
    reasons = breaches(evidence, params, sure=missing > 0)
    if reasons:
        return Decision(action="rollback", reasons=reasons, missing_requests=missing)
    if missing:
        return Decision(action="wait", reasons=[], missing_requests=missing)
    unjudged = _readings_unjudged(evidence, params)
    return Decision(action="wait" if unjudged else "promote", reasons=unjudged, missing_requests=0)


def _readings_unjudged(evidence: Evidence, params: RolloutParameters) -> list[str]:
    """Why nothing yet says whether the challenger reads right. Canary answers alone show its
    errors, speed and confidence, not its digits: a saturated server shadows little, and an
    untrained model answers as fast and as sure as a trained one."""
    labelled, needed = evidence.challenger.labelled, params.thresholds.min_labelled_images
    if evidence.shadow_images >= params.min_samples or labelled >= needed:
        return []
    return [
        f"what it reads is not judged yet: {evidence.shadow_images} shadowed images (at least "
        f"{params.min_samples}) and {labelled} labelled answers (at least {needed})"
    ]
