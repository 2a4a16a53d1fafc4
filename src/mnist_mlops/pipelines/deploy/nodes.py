"""Nodes of the deploy pipeline, run against the production workspace."""

from __future__ import annotations

import json
import logging
import secrets
import statistics
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mnist_mlops.model_card import Deployment
from mnist_mlops.model_card.store import add_deployment
from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
from mnist_mlops.real_pictures import picture_accuracy, picture_batches
from mnist_mlops.registry import LINEAGE_TAG, version_with_alias
from mnist_mlops.serving.process import ScoringProcess, ServerNotReady
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)

STATUS_TAG = "mnist.deploy_status"


class DeploymentError(RuntimeError):
    """The candidate was not promoted; ``production`` is where it was."""


def select_version(production: Workspace, deployment: DeploymentParameters) -> dict[str, Any]:
    """Pick ``deployment.version``, or the newest pushed version not yet deployed.

    The result's ``action`` tells the next nodes what to do: ``deploy`` it; ``rollback`` (with
    ``deployment.rollback`` true ``production`` was moved back to ``previous-production``) or
    ``skip`` (``deployment.enabled`` false, as in the sandbox environment): they stand aside.
    """
    return _select(production, deployment, pushed_version=None)


def select_pushed_version(
    pushed: dict[str, Any], production: Workspace, deployment: DeploymentParameters
) -> dict[str, Any]:
    """As :func:`select_version`, but deploy the version registration just pushed."""
    return _select(production, deployment, pushed_version=str(pushed["version"]))


def _select(
    production: Workspace, deployment: DeploymentParameters, pushed_version: str | None
) -> dict[str, Any]:
    name = deployment.model_name
    if not deployment.enabled:
        logger.info("deployment.enabled is false in this environment: nothing deployed")
        return {"name": name, "action": "skip"}
    if deployment.rollback:
        return _rollback(production, name)
    wanted = deployment.version or pushed_version
    with production.session() as client:
        versions = client.search_model_versions(f"name = '{name}'")
    if wanted:
        chosen = [v for v in versions if str(v.version) == str(wanted)]
        if not chosen:
            raise DeploymentError(f"{name} has no version {wanted} in production")
    else:
        chosen = [v for v in versions if LINEAGE_TAG in v.tags and STATUS_TAG not in v.tags]
        if not chosen:
            raise DeploymentError(
                f"No pushed version of {name} is waiting to be deployed: run registration "
                "first, or name one with deployment.version"
            )
    version = max(chosen, key=lambda v: int(v.version))
    logger.info("Deploying %s version %s", name, version.version)
    return {
        "name": name,
        "action": "deploy",
        "version": str(version.version),
        "tags": dict(version.tags),
    }


def _rollback(production: Workspace, name: str) -> dict[str, Any]:
    previous = version_with_alias(production, name, "previous-production")
    current = version_with_alias(production, name, "production")
    if previous is None:
        raise DeploymentError(f"{name} has no previous-production version to roll back to")
    with production.session() as client:
        client.set_registered_model_alias(name, "production", previous.version)
        if current is not None:
            client.set_registered_model_alias(name, "previous-production", current.version)
    logger.info(
        "Rolled back %s: production is version %s again (was %s)",
        name,
        previous.version,
        current.version if current else None,
    )
    return {"name": name, "action": "rollback", "version": str(previous.version)}


def _reject(production: Workspace, candidate: dict[str, Any], reason: str) -> DeploymentError:
    with production.session() as client:
        client.set_model_version_tag(
            candidate["name"], candidate["version"], STATUS_TAG, f"rejected: {reason}"[:500]
        )
    return DeploymentError(
        f"{candidate['name']} version {candidate['version']} rejected, production unchanged: "
        f"{reason}"
    )


def validate_version(
    candidate: dict[str, Any],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    pictures: pd.DataFrame,
    production: Workspace,
    deployment: DeploymentParameters,
) -> dict[str, Any]:
    """Load the version from the production registry and check it on MNIST and on the
    real-picture set (``deployment.min_photo_accuracy`` applies to the whole set)."""
    if candidate["action"] != "deploy":
        return {}
    model = production.load_pyfunc(f"models:/{candidate['name']}/{candidate['version']}")
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
    return {
        "test_accuracy": test_accuracy,
        "photo_accuracy": photo_accuracy,
        "photo_accuracy_by_category": by_category,
    }


def stage_version(
    candidate: dict[str, Any],
    validation: dict[str, Any],
    production: Workspace,
    deployment: DeploymentParameters,
) -> dict[str, Any]:
    """Add the validation figures to the version's model card and description (registration's
    sections stay; a second deploy replaces this section), then give it the alias staging."""
    if candidate["action"] != "deploy":
        return candidate
    name, version = candidate["name"], candidate["version"]
    section = Deployment(
        validated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        min_test_accuracy=deployment.min_test_accuracy,
        min_photo_accuracy=deployment.min_photo_accuracy,
        **validation,
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
    return {**candidate, **validation}


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
    test_images: np.ndarray, pictures: pd.DataFrame, batch_size: int
) -> tuple[dict[str, tuple[bytes, int]], dict[str, bytes]]:
    """Valid requests with how many predictions each must get back, and invalid requests.

    The whole real-picture set goes in batches of ``batch_size``, each within the server's
    body and pixel limits.
    """
    batch = test_images[:64].astype(float).tolist()
    valid = {
        "array batch": (json.dumps({"inputs": batch}).encode(), len(batch)),
        "one image": (json.dumps({"instances": batch[:1]}).encode(), 1),
    }
    for number, records in enumerate(picture_batches(pictures, batch_size), start=1):
        body = json.dumps({"dataframe_records": records}).encode()
        valid[f"pictures batch {number}"] = (body, len(records))
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


def _exercise(server: ScoringProcess, token: str, requests: tuple, repeats: int) -> tuple:
    """Put the running server through the requests: the problems found and the latencies."""
    valid, invalid = requests
    problems, latencies = [], []
    for what, (body, expected) in valid.items():
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
    staged: dict[str, Any],
    test_images: np.ndarray,
    pictures: pd.DataFrame,
    production: Workspace,
    deployment: DeploymentParameters,
) -> dict[str, Any]:
    """Serve ``models:/<name>@staging`` in a real scoring server and put it through requests.

    Valid requests (an array batch, the real-picture set in batches) must answer 200 with one
    prediction per input, invalid ones 4xx. The version is rejected only for what the server did
    (did not start, broke a connection, answered wrongly); any other failure (a bad parameter, a
    bug) fails the run and leaves the version selectable.

    The server's environment is the production workspace's alone
    (:meth:`~mnist_mlops.workspaces.Workspace.subprocess_env`): none of this process's
    credentials, which in the whole flow include the sandbox's, reach it.
    """
    if staged["action"] != "deploy":
        return {}
    token = secrets.token_urlsafe(16)
    requests = _infra_requests(test_images, pictures, deployment.picture_batch_size)
    repeats = deployment.infra_requests
    server = _staging_server(staged["name"], production, token, deployment.server_ready_timeout_s)
    try:
        with server:
            problems, latencies = _exercise(server, token, requests, repeats)
    except (ServerNotReady, OSError) as exc:  # URLError, a reset connection: the server's doing
        raise _reject(production, staged, f"infra-validation failed: {exc}") from exc
    if problems:
        raise _reject(
            production,
            staged,
            "infra-validation failed: "
            + "; ".join(problems)
            + f"\nserver log:\n{server.log_tail()}",
        )
    report = _latency_report(server.ready_after_s, latencies)
    logger.info("Infra-validation passed: %s", report)
    return report


def _latency_report(ready_after_s: float, latencies: list[float]) -> dict[str, Any]:
    """How soon the server was ready and how fast it answered (milliseconds)."""
    return {
        "ready_after_s": round(ready_after_s, 2),
        "requests": len(latencies),
        "latency_p50_ms": round(statistics.median(latencies), 2),
        "latency_max_ms": round(max(latencies), 2),
    }


def promote(
    staged: dict[str, Any], infra_report: dict[str, Any], production: Workspace
) -> dict[str, Any]:
    """Move ``production`` to the infra-validated version, keeping ``previous-production``."""
    if staged["action"] != "deploy":
        return {key: staged[key] for key in ("name", "action", "version") if key in staged}
    name, version = staged["name"], staged["version"]
    current = version_with_alias(production, name, "production")
    with production.session() as client:
        if current is not None and str(current.version) != version:
            client.set_registered_model_alias(name, "previous-production", current.version)
        client.set_registered_model_alias(name, "production", version)
        client.set_model_version_tag(name, version, STATUS_TAG, "production")
    logger.info("%s version %s is in production", name, version)
    return {
        "name": name,
        "action": "deploy",
        "production": version,
        "previous_production": str(current.version) if current else None,
        "test_accuracy": staged["test_accuracy"],
        "photo_accuracy": staged["photo_accuracy"],
        "photo_accuracy_by_category": staged["photo_accuracy_by_category"],
        **infra_report,
    }
