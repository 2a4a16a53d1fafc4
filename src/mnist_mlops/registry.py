"""Registry conventions shared by the registration, deploy and batch_predict pipelines."""

from __future__ import annotations

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
