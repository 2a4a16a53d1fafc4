"""Nodes of the deploy pipeline, run against the production workspace."""

from __future__ import annotations

import json
import logging
import secrets
import statistics
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from mnist_mlops.evaluation.real_pictures import picture_accuracy, picture_batches
from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
from mnist_mlops.registry import (
    CANARY_ALIAS,
    CANARY_SINCE_TAG,
    LINEAGE_TAG,
    STATUS_TAG,
    move_production,
    now_utc,
    refused,
    roll_back,
    tag_status,
    utc_iso,
    version_with_alias,
)
from mnist_mlops.registry.model_card import Deployment
from mnist_mlops.registry.model_card.store import add_deployment
from mnist_mlops.registry.outcomes import NoSuchVersion, Rejected
from mnist_mlops.registry.records import (
    DeployCandidate,
    DeploymentReport,
    DeployValidation,
    InfraReport,
    PushedVersion,
    version_string,
)
from mnist_mlops.serving.process import ScoringProcess, ServerNotReady
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)


class DeploymentError(Rejected):
    """The candidate was rejected: ``production`` is where it was."""


def select_version(production: Workspace, deployment: DeploymentParameters) -> DeployCandidate:
    """Pick ``deployment.version``, or the newest pushed version not yet deployed.

    The result's ``action`` tells the next nodes what to do: ``deploy`` it; or stand aside:
    ``rollback`` (with ``deployment.rollback`` true, ``production`` was moved back to
    ``previous-production``), ``skip`` (``deployment.enabled`` false, as in the sandbox
    environment), ``nothing`` (nothing new to deploy, ``reason`` says why).
    """
    return _select(production, deployment, pushed_version=None)


def select_pushed_version(
    pushed: PushedVersion, production: Workspace, deployment: DeploymentParameters
) -> DeployCandidate:
    """As :func:`select_version`, but deploy the version registration just pushed, unless it is
    already in production, or was rejected or rolled back (then only ``deployment.version``
    deploys it again)."""
    return _select(production, deployment, pushed_version=pushed.version)


def _select(
    production: Workspace, deployment: DeploymentParameters, pushed_version: str | None
) -> DeployCandidate:
    name = deployment.model_name
    if not deployment.enabled:
        reason = "deployment.enabled is false in this environment"
        logger.info("Nothing deployed: %s", reason)
        return DeployCandidate(name=name, action="skip", reason=reason)
    if deployment.rollback:
        moved = roll_back(production, name, "deployment.rollback=true")
        return DeployCandidate(name=name, action="rollback", version=moved.restored)
    with production.session() as client:
        versions = client.search_model_versions(f"name = '{name}'")
    current = version_with_alias(production, name, "production")
    in_production = version_string(current.version) if current is not None else None
    chosen, reason = _choose(name, versions, deployment.version, pushed_version, in_production)
    if chosen is None:
        logger.info("%s", reason)
        return DeployCandidate(name=name, action="nothing", version=in_production, reason=reason)
    logger.info("Deploying %s version %s", name, chosen.version)
    return DeployCandidate(
        name=name, action="deploy", version=chosen.version, tags=dict(chosen.tags)
    )


def _choose(
    name: str,
    versions: list[ModelVersion],
    named: int | None,
    pushed: str | None,
    in_production: str | None,
) -> tuple[ModelVersion | None, str]:
    """The version to deploy, or None and why there is nothing to deploy."""
    by_number = {version_string(v.version): v for v in versions}
    if named is not None:
        chosen = by_number.get(version_string(named))
        if chosen is None:
            raise NoSuchVersion(f"{name} has no version {named} in production")
    elif pushed is not None:
        chosen = by_number[pushed]
        if refused(chosen):
            return None, (
                f"{name} version {pushed} is not deployed again ({chosen.tags[STATUS_TAG]}); "
                f"name it with deployment.version={pushed} to deploy it anyway"
            )
    else:
        pushed_ones = [v for v in versions if LINEAGE_TAG in v.tags]
        waiting = [v for v in pushed_ones if STATUS_TAG not in v.tags]
        if not waiting:
            return None, _nothing_waiting(name, pushed_ones, in_production)
        chosen = max(waiting, key=lambda v: int(v.version))
    if version_string(chosen.version) == in_production:
        return None, f"{name} version {in_production} is already in production: nothing to deploy"
    return chosen, ""


def _nothing_waiting(name: str, pushed: list[ModelVersion], in_production: str | None) -> str:
    """Why no pushed version waits to be deployed."""
    if not pushed:
        return f"No version of {name} has been pushed to production yet: run registration first"
    newest = max(pushed, key=lambda v: int(v.version))
    if version_string(newest.version) == in_production:
        return f"{name} version {in_production} is already in production: nothing to deploy"
    return (
        f"No pushed version of {name} is waiting to be deployed (the newest, version "
        f"{newest.version}, is {newest.tags[STATUS_TAG]!r}); production is version "
        f"{in_production}. Name one with deployment.version to deploy it."
    )


def _reject(production: Workspace, candidate: DeployCandidate, reason: str) -> DeploymentError:
    """Tag the version rejected (the first line of the reason in its card) and say so."""
    first_line = reason.splitlines()[0]
    tag_status(production, candidate.name, candidate.chosen, "rejected", first_line)
    return DeploymentError(
        f"{candidate.name} version {candidate.chosen} rejected, production unchanged: {reason}"
    )


def validate_version(
    candidate: DeployCandidate,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    pictures: pd.DataFrame,
    production: Workspace,
    deployment: DeploymentParameters,
) -> DeployCandidate:
    """Load the version from the production registry and check it on MNIST and on the
    real-picture set (``deployment.min_photo_accuracy`` applies to the whole set)."""
    if candidate.action != "deploy":
        return candidate
    model = production.load_pyfunc(f"models:/{candidate.name}/{candidate.version}")
    digits = model.predict(test_images.astype(np.float32))["digit"].to_numpy()
    test_accuracy = float((digits == test_labels).mean())
    photo_accuracy, by_category = picture_accuracy(model, pictures, deployment.picture_batch_size)
    logger.info(
        "Test accuracy %.4f, photo accuracy %.3f (%s)", test_accuracy, photo_accuracy, by_category
    )
    failures = [
        f"{what} {value:.4f} is below deployment.{key} {minimum}"
        for what, value, key, minimum in (
            ("test accuracy", test_accuracy, "min_test_accuracy", deployment.min_test_accuracy),
            ("photo accuracy", photo_accuracy, "min_photo_accuracy", deployment.min_photo_accuracy),
        )
        if value < minimum
    ]
    if failures:
        raise _reject(production, candidate, "; ".join(failures))
    validation = DeployValidation(
        test_accuracy=test_accuracy,
        photo_accuracy=photo_accuracy,
        photo_accuracy_by_category=by_category,
    )
    return candidate.model_copy(update={"validation": validation})


def stage_version(
    candidate: DeployCandidate, production: Workspace, deployment: DeploymentParameters
) -> DeployCandidate:
    """Add the validation figures to the version's model card and description (registration's
    sections stay; a second deploy replaces this section), then give it the alias staging."""
    if candidate.action != "deploy" or candidate.validation is None:
        return candidate
    name, version = candidate.name, candidate.chosen
    section = Deployment(
        validated_at=now_utc(),
        min_test_accuracy=deployment.min_test_accuracy,
        min_photo_accuracy=deployment.min_photo_accuracy,
        **candidate.validation.model_dump(),
    )
    add_deployment(production, name, version, section)
    with production.session() as client:
        client.update_registered_model(
            name,
            description="Handwritten digit classifier for the MNIST REST API. Aliases: staging "
            "(validated), production (infra-validated, served), previous-production (rollback).",
        )
        client.set_registered_model_alias(name, "staging", version)
    logger.info("%s version %s described and staged", name, version)
    return candidate


def _request(url: str, body: bytes, token: str | None) -> tuple[int, float, bytes]:
    """POST to /invocations: the status, the latency in ms and the body. A connection that
    breaks is the server's doing: it raises ``OSError`` (``URLError``), which the caller treats
    as a server failure."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/invocations", data=body, headers=headers), timeout=30
        ) as response:
            answer, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        answer, status = error.read(), error.code
    return status, (time.perf_counter() - started) * 1000, answer


def _infra_requests(
    test_images: np.ndarray, pictures: pd.DataFrame, batch_size: int, repeats: int
) -> tuple[dict[str, tuple[bytes, int, int]], dict[str, bytes]]:
    """Valid requests with how many predictions each must get back and how many times each is
    sent, and invalid requests.

    The array batch and the single image are sent ``repeats`` times, for the latency figures;
    the picture set once, in batches of ``batch_size`` (within the server's body and pixel
    limits): its accuracy is validate_version's, this checks that every picture is answered.
    """
    batch = test_images[:64].astype(float).tolist()
    valid = {
        "array batch": (json.dumps({"inputs": batch}).encode(), len(batch), repeats),
        "one image": (json.dumps({"instances": batch[:1]}).encode(), 1, repeats),
    }
    for number, records in enumerate(picture_batches(pictures, batch_size), start=1):
        body = json.dumps({"dataframe_records": records}).encode()
        valid[f"pictures batch {number}"] = (body, len(records), 1)
    invalid = {
        "invalid JSON": b"{",
        "wrong shape": json.dumps({"inputs": [[1, 2, 3]]}).encode(),
        "pixels out of range": json.dumps({"inputs": [[[999] * 28] * 28]}).encode(),
        "not an image": json.dumps({"dataframe_records": [{"image": "bm9wZQ=="}]}).encode(),
    }
    return valid, invalid


def _answer_problem(what: str, status: int, answer: bytes, expected: int) -> str | None:
    """What is wrong with the server's answer to a valid request, if anything."""
    if status != 200:
        return f"{what} answered {status}"
    try:
        predictions = json.loads(answer)["predictions"]
        digits = [p["digit"] for p in predictions]
    except (ValueError, KeyError, TypeError):
        return f"{what} answered 200 without predictions: {answer[:200]!r}"
    # A picture with no digit found is a well-formed answer (null digit, "error"): validation
    # counts it as wrong, here it need only be in its place.
    if len(digits) != expected or not all(d is None or d in range(10) for d in digits):
        return f"{what} answered {len(digits)} predictions for {expected} inputs: {digits[:10]}"
    return None


def _exercise(server: ScoringProcess, token: str, requests: tuple) -> tuple:
    """Put the running server through the requests: the problems found and the latencies."""
    valid, invalid = requests
    problems, latencies = [], []
    for what, (body, expected, repeats) in valid.items():
        for _ in range(repeats):
            status, latency, answer = _request(server.url, body, token)
            latencies.append(latency)
            if problem := _answer_problem(what, status, answer, expected):
                problems.append(problem)
                break
    for what, body in invalid.items():
        status, _, _ = _request(server.url, body, token)
        if not 400 <= status < 500:
            problems.append(f"{what} answered {status}, expected 4xx")
    if _request(server.url, valid["one image"][0], None)[0] != 401:
        problems.append("a request without the token was not refused")
    return problems, latencies


def _staging_server(
    name: str, production: Workspace, token: str, ready_timeout_s: float
) -> ScoringProcess:
    """A scoring server (not started) for ``models:/<name>@staging``, in the production
    workspace's environment alone, requiring ``token``."""
    return ScoringProcess.for_model(
        f"models:/{name}@staging",
        env={**production.subprocess_env(), "MNIST_SERVING_TOKEN": token},
        inherit_env=False,
        token=token,
        ready_timeout_s=ready_timeout_s,
    )


def infra_validate(
    staged: DeployCandidate,
    test_images: np.ndarray,
    pictures: pd.DataFrame,
    production: Workspace,
    deployment: DeploymentParameters,
) -> DeployCandidate:
    """Serve ``models:/<name>@staging`` in a real scoring server and put it through requests.

    Valid requests (an array batch, the real-picture set in batches) must answer 200 with one
    prediction per input, invalid ones 4xx. The version is rejected only for what the server did
    (did not start, broke a connection, answered wrongly); any other failure (a bad parameter, a
    bug) fails the run and leaves the version selectable.

    The server's environment is the production workspace's alone
    (:meth:`~mnist_mlops.workspaces.Workspace.subprocess_env`): none of this process's
    credentials, which in the whole flow include the sandbox's, reach it.
    """
    if staged.action != "deploy":
        return staged
    token = secrets.token_urlsafe(16)
    requests = _infra_requests(
        test_images, pictures, deployment.picture_batch_size, deployment.infra_requests
    )
    server = _staging_server(staged.name, production, token, deployment.server_ready_timeout_s)
    try:
        with server:
            problems, latencies = _exercise(server, token, requests)
    except (ServerNotReady, OSError) as exc:  # URLError, a reset connection: the server's doing
        raise _reject(production, staged, f"infra-validation failed: {exc}") from exc
    if problems:
        log = server.log_tail()
        reason = f"infra-validation failed: {'; '.join(problems)}\nserver log:\n{log}"
        raise _reject(production, staged, reason)
    report = _latency_report(server.ready_after_s, latencies)
    logger.info("Infra-validation passed: %s", report)
    return staged.model_copy(update={"infra": report})


def _latency_report(ready_after_s: float, latencies: list[float]) -> InfraReport:
    """How soon the server was ready and how fast it answered (milliseconds)."""
    return InfraReport(
        ready_after_s=round(ready_after_s, 2),
        requests=len(latencies),
        latency_p50_ms=round(statistics.median(latencies), 2),
        latency_max_ms=round(max(latencies), 2),
    )


def promote(
    candidate: DeployCandidate, production: Workspace, deployment: DeploymentParameters
) -> DeploymentReport:
    """Move ``production`` to the infra-validated version, keeping ``previous-production``
    (with ``deployment.mode`` canary and a version in production: alias it canary instead)."""
    name = candidate.name
    if candidate.action != "deploy":
        return DeploymentReport(
            name=name,
            action=candidate.action,
            production=candidate.version,
            reason=candidate.reason,
        )
    version = candidate.chosen
    current = version_with_alias(production, name, "production")
    previous = version_string(current.version) if current is not None else None
    if deployment.mode == "canary" and previous is not None and previous != version:
        return to_canary(candidate, production, previous)
    with production.session() as client:
        move_production(client, name, version, previous)
    logger.info("%s version %s is in production", name, version)
    return DeploymentReport(
        name=name,
        action="deploy",
        production=version,
        previous_production=previous if previous != version else None,
        validation=candidate.validation,
        infra=candidate.infra,
    )


# deployment.mode=canary (rollout): the validated version becomes the challenger, not production.
def to_canary(candidate: DeployCandidate, production: Workspace, current: str) -> DeploymentReport:
    """Alias the infra-validated version ``canary`` and tag since when, so that the scoring
    servers give it live traffic and the rollout pipeline judges it from then on."""
    name, version = candidate.name, candidate.chosen
    with production.session() as client:
        client.set_registered_model_alias(name, CANARY_ALIAS, version)
        client.set_model_version_tag(name, version, STATUS_TAG, "canary")
        client.set_model_version_tag(name, version, CANARY_SINCE_TAG, utc_iso())
    logger.info(
        "%s version %s is the canary beside production version %s: "
        "`kedro run --pipeline rollout --env gcp` promotes or rolls it back",
        name,
        version,
        current,
    )
    return DeploymentReport(
        name=name,
        action="canary",
        production=current,
        canary=version,
        validation=candidate.validation,
        infra=candidate.infra,
    )
