"""The challenger of one worker: canary answers and shadow scoring, never at production's cost.

The version under ``serving.rollout.challenger_alias`` (when there is one) answers
``canary_fraction`` of the scoring requests: if it fails, times out or is busy, production
answers instead and the failure is logged and counted. Of the requests production answers,
``shadow_fraction`` are queued (bounded: a full queue drops the request and counts it) and scored
by the challenger in the background after the client has its answer, once the worker is quiet
(``QUIET_S``) or has waited ``MAX_SHADOW_WAIT_S`` for it; the request's log line is written
then, with the challenger's digits, confidences and latency beside production's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
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
THREADS = 2  # the challenger's own threads per worker: one hung call never stops the other
# How long the event loop waits in place for a canary's answer (blocked, as it is while
# production scores inline) before it lets other requests in and awaits the answer. Over
# production's inline scoring, awaiting from the start (the loop goes back to polling, and the
# answer wakes it) measured +93 us with requests 1 ms apart and +203 us 50 ms apart, waiting in
# place +81 and +148 us (benchmarks/challenger_hop.py). A version slower than this costs the
# loop this much per canary answer at most; a hung one, once per thread.
IN_PLACE_S = 0.002
# The shadow scores a queued request only once the worker has answered everything and taken
# no request for this long: scored while production answered the next request, it made
# production's single-image p50 1.2-1.7x and cost 4 clients up to 0.79x of their requests/s.
# At 20 requests/s a worker idles ~45 ms between two. A worker that never idles this long
# still scores one queued request every ``MAX_SHADOW_WAIT_S`` (a 16-client saturated server
# otherwise shadowed nothing, and the rollout had no readings to judge a bad canary by); the
# rest of its requests are dropped from shadowing and counted.
QUIET_S = 0.005
MAX_SHADOW_WAIT_S = 0.1


@dataclass(frozen=True)
class Scored:
    """One version's answer to a request."""

    model: LoadedModel
    pixels: np.ndarray
    probabilities: np.ndarray
    seconds: float
    challenger_error: dict[str, str] | None = None  # the canary's failure production covered


class Traffic:
    """The requests a worker is answering, and when it last answered one."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.last = 0.0  # time.monotonic() of the last answer
        self.idle = asyncio.Event()
        self.idle.set()

    def started(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def ended(self) -> None:
        self.in_flight -= 1
        self.last = time.monotonic()
        if not self.in_flight:
            self.idle.set()

    async def quiet(self, seconds: float) -> None:
        """Return once no request has been in flight for ``seconds``."""
        while True:
            await self.idle.wait()
            left = self.last + seconds - time.monotonic()
            if left <= 0 and not self.in_flight:
                return
            await asyncio.sleep(max(left, 0.0))


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
        traffic: Traffic,
    ) -> None:
        self.settings, self.uri, self.write, self.score = settings, uri, write, score
        self.traffic = traffic
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
        self.executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="challenger")
        self.pending = 0
        self.jobs: list[Future] = []  # submitted and not done: a hung one keeps its thread
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
                return await self._run(challenger, parsed, in_place=True)
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
            quiet = await self._quiet()
            try:
                scored = await self._run(challenger, parsed)
            except Exception as exc:
                record["shadow"] = self._failed(challenger, "shadow", exc)
            else:
                record["shadow"] = shadow_evidence(scored, record, digits, parsed)
                # Scored beside production's work, its time includes waits for the interpreter
                # (up to the 5 ms switch interval each): not comparable with production's.
                record["shadow"]["contended"] = not quiet
            self.write(record)

    async def _quiet(self) -> bool:
        """Wait until the worker is quiet, at most ``MAX_SHADOW_WAIT_S``; whether it was."""
        try:
            await asyncio.wait_for(self.traffic.quiet(QUIET_S), MAX_SHADOW_WAIT_S)
        except TimeoutError:
            return False
        return True

    async def _run(
        self, challenger: LoadedModel, parsed: ScoringRequest, in_place: bool = False
    ) -> Scored:
        """The challenger's scoring on its threads, within ``challenger_timeout_s``; awaited
        ``in_place`` first when a thread is free to start it at once (see ``IN_PLACE_S``)."""
        if self.pending >= self.settings.shadow_queue:
            raise ChallengerBusy(f"{self.pending} requests already wait for the challenger")
        self.pending += 1
        try:
            self.jobs = [job for job in self.jobs if not job.done()]
            in_place = in_place and len(self.jobs) < THREADS
            job = self.executor.submit(self._timed, challenger.model, parsed)
            self.jobs.append(job)
            seconds, (pixels, probabilities) = await self._result(job, in_place)
        finally:
            self.pending -= 1
        return Scored(challenger, pixels, probabilities, seconds)

    async def _result(self, job: Future, in_place: bool) -> tuple[float, Scoring]:
        timeout = self.settings.challenger_timeout_s
        if in_place:
            waited = min(IN_PLACE_S, timeout)
            try:
                return job.result(timeout=waited)
            except TimeoutError:
                if not job.done():  # else the challenger's own TimeoutError: raised below
                    timeout -= waited
        return await asyncio.wait_for(asyncio.wrap_future(job), timeout)

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
