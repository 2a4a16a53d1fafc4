"""The challenger of one worker: canary answers and shadow scoring, never at production's cost.

The version under ``serving.rollout.challenger_alias`` (when there is one) answers
``canary_fraction`` of the scoring requests: if it fails, times out or is busy, production
answers instead and the failure is logged and counted. Of the requests production answers,
``shadow_fraction`` are queued (bounded: a full queue drops the request and counts it) and scored
by the challenger in the background after the client has its answer; the request's log line is
written then, with the challenger's digits, confidences and latency beside production's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_mlops.serving import metrics
from mnist_mlops.serving.model import LoadedModel, ModelFollower
from mnist_mlops.serving.parsing import ScoringRequest
from mnist_mlops.serving.settings import RolloutSettings

logger = logging.getLogger(__name__)

Scoring = tuple[np.ndarray, np.ndarray]  # pixels the model saw, its probabilities
# Production's scoring, inline or in a thread: its time (taken where it runs) and its result.
ScoreFunction = Callable[[Any, ScoringRequest], Awaitable[tuple[float, Scoring]]]
MAX_ERROR = 200  # characters of a challenger's error kept in the log


@dataclass(frozen=True)
class Scored:
    """One version's answer to a request."""

    model: LoadedModel
    pixels: np.ndarray
    probabilities: np.ndarray
    seconds: float
    challenger_error: dict[str, str] | None = None  # the canary's failure production covered


class Challenger:
    """Routes to and shadows with the challenger a worker follows (none when ``uri`` is None:
    production is served by version, not by alias)."""

    def __init__(
        self,
        settings: RolloutSettings,
        uri: str | None,
        production: ModelFollower,
        write: Callable[[dict[str, Any]], None],
        score: Callable[[Any, ScoringRequest], Scoring],
    ) -> None:
        self.settings, self.uri, self.write, self.score = settings, uri, write, score
        self.follower = ModelFollower(
            uri or "",
            None,
            production.poll_s,
            production.root,
            threads=production.threads,
            role="canary",
        )
        self.queue: asyncio.Queue[tuple[ScoringRequest, LoadedModel, dict, list[int | None]]] = (
            asyncio.Queue(maxsize=settings.shadow_queue)
        )
        # Its own threads: a slow challenger never holds up production's thread pool.
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="challenger")
        self.pending = 0
        self.random = random.Random()

    async def start(self) -> None:
        if self.uri is not None:
            await self.follower.start()

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """What runs while the worker serves: following the alias, and shadowing."""
        return [] if self.uri is None else [self.follower.follow(), self._shadow_loop()]

    async def answer(
        self,
        parsed: ScoringRequest,
        score: ScoreFunction,
        challenger: LoadedModel | None,
        production: LoadedModel,
    ) -> Scored:
        """The canary's answer for its share of requests, production's otherwise (and whenever
        the canary fails: the client never sees a challenger's failure)."""
        failure = None
        if challenger is not None and self.random.random() < self.settings.canary_fraction:
            try:
                return await self._run(challenger, parsed)
            except Exception as exc:
                failure = exc
        seconds, (pixels, probabilities) = await score(production.model, parsed)  # may refuse
        # Counted only now: input production refuses too is the client's error, not the canary's.
        error = None if failure is None else self._failed(challenger, "answered", failure)
        return Scored(production, pixels, probabilities, seconds, error)

    def shadow(
        self,
        parsed: ScoringRequest,
        challenger: LoadedModel,
        record: dict[str, Any],
        digits: list[int | None],
    ) -> None:
        """Log ``record`` now, or after the challenger has scored the request too."""
        if self.random.random() >= self.settings.shadow_fraction:
            self.write(record)
            return
        try:
            self.queue.put_nowait((parsed, challenger, record, digits))
        except asyncio.QueueFull:
            metrics.SHADOW_DROPPED.inc()
            self.write({**record, "shadow": {"model_version": challenger.version, "dropped": True}})

    async def _shadow_loop(self) -> None:
        while True:
            parsed, challenger, record, digits = await self.queue.get()
            try:
                scored = await self._run(challenger, parsed)
            except Exception as exc:
                record["shadow"] = self._failed(challenger, "shadow", exc)
            else:
                record["shadow"] = shadow_evidence(scored, record, digits, parsed)
            self.write(record)

    async def _run(self, challenger: LoadedModel, parsed: ScoringRequest) -> Scored:
        """The challenger's scoring on its threads, within ``challenger_timeout_s``."""
        if self.pending >= self.settings.shadow_queue:
            raise ChallengerBusy(f"{self.pending} requests already wait for the challenger")
        self.pending += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self.executor, self._timed, challenger.model, parsed
            )
            seconds, (pixels, probabilities) = await asyncio.wait_for(
                future, self.settings.challenger_timeout_s
            )
        finally:
            self.pending -= 1
        return Scored(challenger, pixels, probabilities, seconds)

    def _timed(self, model: Any, parsed: ScoringRequest) -> tuple[float, Scoring]:
        """Scoring and its time, taken in the thread: what the version costs, not the queue
        before it (production's is timed the same way)."""
        started = time.perf_counter()
        scoring = self.score(model, parsed)
        return time.perf_counter() - started, scoring

    def _failed(self, challenger: Any, role: str, exc: Exception) -> dict[str, str]:
        if isinstance(exc, TimeoutError):
            message = f"timed out after {self.settings.challenger_timeout_s} s"
        else:
            message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        metrics.VERSION_REQUESTS.labels(version=challenger.version, role=role).inc()
        metrics.VERSION_ERRORS.labels(version=challenger.version, role=role).inc()
        logger.warning("challenger version %s failed (%s): %s", challenger.version, role, message)
        return {"model_version": challenger.version, "error": message}

    def close(self) -> None:
        """At shutdown: log what still waited for the shadow, without it."""
        while not self.queue.empty():
            _, challenger, record, _ = self.queue.get_nowait()
            self.write({**record, "shadow": {"model_version": challenger.version, "dropped": True}})
        self.executor.shutdown(wait=False, cancel_futures=True)


class ChallengerBusy(RuntimeError):
    """Too many requests already wait for the challenger (a slow or hung version)."""


def digits_of(probabilities: np.ndarray) -> list[int | None]:
    """The digit of each row; None where the model found no digit (its row is NaN)."""
    found = ~np.isnan(probabilities).any(axis=1)
    return [int(d) if f else None for d, f in zip(probabilities.argmax(axis=1), found, strict=True)]


def confidences_of(probabilities: np.ndarray, digits: list[int | None]) -> list[float | None]:
    """The probability of each row's digit (None without a digit)."""
    return [None if d is None else float(p[d]) for d, p in zip(digits, probabilities, strict=True)]


def shadow_evidence(
    scored: Scored, record: dict[str, Any], digits: list[int | None], parsed: ScoringRequest
) -> dict[str, Any]:
    """The challenger's digit and confidence beside production's in each row; counted (images
    where either found no digit are not pairs)."""
    shadow_digits = digits_of(scored.probabilities.astype(np.float64))
    confidences = confidences_of(scored.probabilities, shadow_digits)
    for row, digit, confidence in zip(record["rows"], shadow_digits, confidences, strict=True):
        row["shadow_digit"] = digit
        row["shadow_confidence"] = None if confidence is None else round(confidence, 6)
    version = scored.model.version
    metrics.count_version(
        version, "shadow", scored.seconds, shadow_digits, confidences, parsed.labels
    )
    pairs = [(a, b) for a, b in zip(digits, shadow_digits, strict=True) if None not in (a, b)]
    metrics.SHADOW_PAIRS.labels(version=version).inc(len(pairs))
    metrics.SHADOW_AGREEMENT.labels(version=version).inc(sum(a == b for a, b in pairs))
    return {"model_version": version, "latency_ms": round(scored.seconds * 1000, 3)}
