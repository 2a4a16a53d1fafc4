"""Registry operations shared by the registration and deployment pipelines."""

from __future__ import annotations

import time
from typing import Any

from mlflow.exceptions import MlflowException

from mnist_mlops.workspaces import Workspace

LINEAGE_TAG = "mnist.lineage"
TEST_ACCURACY_TAG = "mnist.test_accuracy"


def ensure_registered_model(client: Any, name: str) -> None:
    """Create the registered model unless it exists."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def version_with_alias(workspace: Workspace, name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or None when there is none (or no such model)."""
    with workspace.session() as client:
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise


def wait_until_ready(client: Any, name: str, version: str, timeout_s: float = 120) -> None:
    """Wait for a new model version to leave PENDING_REGISTRATION."""
    deadline = time.monotonic() + timeout_s
    while (status := client.get_model_version(name, version).status) == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} version {version} still pending after {timeout_s} s")
        time.sleep(0.5)
    if status != "READY":
        raise RuntimeError(f"{name} version {version} failed to register: {status}")
