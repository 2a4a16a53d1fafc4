"""Registry conventions shared by the registration, deploy and batch_predict pipelines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlflow.exceptions import MlflowException

from mnist_mlops.workspaces import Workspace

LINEAGE_TAG = "mnist.lineage"
TEST_ACCURACY_TAG = "mnist.test_accuracy"
# SHA-256 of what a version serves (serving.pyfunc.fingerprint): one version per served model.
FINGERPRINT_TAG = "mnist.fingerprint"
# A challenger (deployment.mode=canary): its alias, since when it holds it, when it was promoted.
CANARY_ALIAS = "canary"
CANARY_SINCE_TAG = "mnist.canary_since"
PROMOTED_AT_TAG = "mnist.promoted_at"
DEPLOY_STATUS_TAG = "mnist.deploy_status"
MAX_DESCRIPTION = 5000  # characters of a version's description kept (the newest)
# How long a new version may stay PENDING_REGISTRATION (MLflow's await_creation_for).
AWAIT_CREATION_S = 120


def ensure_registered_model(client: Any, name: str) -> None:
    """Create the registered model unless it exists."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def versions_with_fingerprint(client: Any, name: str, fingerprint: str) -> list[Any]:
    """The versions of ``name`` tagged with ``fingerprint``, oldest first."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'"
    )
    return sorted(found, key=lambda version: int(version.version))


def version_with_alias(workspace: Workspace, name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or None when there is none (or no such model)."""
    with workspace.session() as client:
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise


def record_outcome(
    workspace: Workspace, name: str, version: str, status: str, heading: str, reason: str
) -> None:
    """Tag a version's ``mnist.deploy_status`` and add a dated section to its description:
    what happened to it (a rollout's or monitoring's rollback) and why."""
    with workspace.session() as client:
        client.set_model_version_tag(name, version, DEPLOY_STATUS_TAG, f"{status}: {reason}"[:500])
        described = client.get_model_version(name, version).description or ""
        section = f"\n\n## {heading}\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {status}: {reason}."
        description = (described + section)[-MAX_DESCRIPTION:]
        client.update_model_version(name, version, description=description)
