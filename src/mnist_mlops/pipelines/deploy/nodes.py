"""Nodes of the deploy pipeline, run against the production workspace."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from mnist_mlops.datasets import Workspace
from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
from mnist_mlops.pipelines.registration.registry import LINEAGE_TAG, version_with_alias
from mnist_mlops.serving.process import ScoringProcess

logger = logging.getLogger(__name__)

STATUS_TAG = "mnist.deploy_status"


class DeploymentError(RuntimeError):
    """The candidate was not promoted; ``production`` is where it was."""


def _photo_records(photos: dict[str, Callable[[], Any]]) -> tuple[list[dict[str, str]], list[int]]:
    records, labels = [], []
    for name, load in sorted(photos.items()):
        buffer = io.BytesIO()
        load().save(buffer, format="PNG")
        records.append({"image": base64.b64encode(buffer.getvalue()).decode()})
        labels.append(int(name.split("/")[-1][0]))
    return records, labels


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
    photos: dict[str, Callable[[], Any]],
    production: Workspace,
    deployment: DeploymentParameters,
) -> dict[str, Any]:
    """Load the version from the production registry and check it on MNIST and on photos."""
    if candidate["action"] != "deploy":
        return {}
    with production.session():
        model = mlflow.pyfunc.load_model(f"models:/{candidate['name']}/{candidate['version']}")
    digits = model.predict(test_images.astype(np.float32))["digit"].to_numpy()
    test_accuracy = float((digits == test_labels).mean())
    records, labels = _photo_records(photos)
    read = model.predict(pd.DataFrame(records))["digit"].to_numpy()
    photo_accuracy = float((read == np.array(labels)).mean())
    logger.info("Test accuracy %.4f, photo accuracy %.3f", test_accuracy, photo_accuracy)
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
    return {"test_accuracy": test_accuracy, "photo_accuracy": photo_accuracy}


def stage_version(
    candidate: dict[str, Any], validation: dict[str, Any], production: Workspace
) -> dict[str, Any]:
    """Describe the registered model and the version, then give the version the alias staging."""
    if candidate["action"] != "deploy":
        return candidate
    name, version, tags = candidate["name"], candidate["version"], candidate["tags"]
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    def lineage(key: str) -> str:
        return tags.get(f"mnist.{key}", "?")

    description = (
        f"MNIST digit classifier (CNN, ONNX Runtime pyfunc) trained with the "
        f"{tags.get('mnist.strategy', '?')} strategy. Takes N x 28 x 28 pixels 0-255 or base64 "
        f"photos; returns the digit and ten probabilities.\n\n"
        f"Validated {today}: MNIST test accuracy {validation['test_accuracy']:.4f}, photo "
        f"accuracy {validation['photo_accuracy']:.3f}.\n\n"
        f"Lineage: {lineage('source_registry')} {lineage('source_model')} version "
        f"{lineage('source_version')}, run {lineage('source_run')}, "
        f"commit {lineage('git_commit')}."
    )
    with production.session() as client:
        client.update_registered_model(
            name,
            description="Handwritten digit classifier for the MNIST REST API. Aliases: staging "
            "(validated), production (infra-validated, served), previous-production (rollback).",
        )
        client.update_model_version(name, version, description=description)
        client.set_registered_model_alias(name, "staging", version)
    logger.info("%s version %s described and staged", name, version)
    return {**candidate, **validation}


def _request(url: str, body: bytes, token: str | None) -> tuple[int, float]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/invocations", data=body, headers=headers), timeout=30
        ) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, (time.perf_counter() - started) * 1000


def infra_validate(
    staged: dict[str, Any],
    test_images: np.ndarray,
    photos: dict[str, Callable[[], Any]],
    production: Workspace,
    deployment: DeploymentParameters,
) -> dict[str, Any]:
    """Serve ``models:/<name>@staging`` in a real scoring server and put it through requests.

    Valid requests (an array batch, base64 photos) must answer 200 and invalid ones 4xx.
    """
    if staged["action"] != "deploy":
        return {}
    token = secrets.token_urlsafe(16)
    env = {"MLFLOW_TRACKING_URI": production.tracking_uri, "MNIST_SERVING_TOKEN": token}
    env.update({k: v for k, v in production.credentials.items() if k.startswith("MLFLOW_")})
    batch = test_images[:64].astype(float).tolist()
    records, _ = _photo_records(photos)
    valid = {
        "array batch": json.dumps({"inputs": batch}).encode(),
        "photos": json.dumps({"dataframe_records": records}).encode(),
        "one image": json.dumps({"instances": batch[:1]}).encode(),
    }
    invalid = {
        "invalid JSON": b"{",
        "wrong shape": json.dumps({"inputs": [[1, 2, 3]]}).encode(),
        "pixels out of range": json.dumps({"inputs": [[[999] * 28] * 28]}).encode(),
        "not an image": json.dumps({"dataframe_records": [{"image": "bm9wZQ=="}]}).encode(),
    }
    server = ScoringProcess.for_model(
        f"models:/{staged['name']}@staging",
        env=env,
        token=token,
        ready_timeout_s=deployment.server_ready_timeout_s,
    )
    problems, latencies = [], []
    try:
        with server:
            for what, body in valid.items():
                for _ in range(deployment.infra_requests):
                    status, latency = _request(server.url, body, token)
                    latencies.append(latency)
                    if status != 200:
                        problems.append(f"{what} answered {status}")
                        break
            for what, body in invalid.items():
                status, _ = _request(server.url, body, token)
                if not 400 <= status < 500:
                    problems.append(f"{what} answered {status}, expected 4xx")
            if _request(server.url, valid["one image"], None)[0] != 401:
                problems.append("a request without the token was not refused")
    except Exception as exc:
        raise _reject(production, staged, f"infra-validation failed: {exc}") from exc
    if problems:
        raise _reject(
            production,
            staged,
            "infra-validation failed: "
            + "; ".join(problems)
            + f"\nserver log:\n{server.log_tail()}",
        )
    report = {
        "ready_after_s": round(server.ready_after_s, 2),
        "requests": len(latencies),
        "latency_p50_ms": round(statistics.median(latencies), 2),
        "latency_max_ms": round(max(latencies), 2),
    }
    logger.info("Infra-validation passed: %s", report)
    return report


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
        **infra_report,
    }
