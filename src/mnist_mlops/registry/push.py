"""The push: a sandbox model version copied into the production workspace's registry, its
lineage in its tags."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mnist_mlops.registry import AWAIT_CREATION_S, LINEAGE_TAG, ensure_registered_model
from mnist_mlops.registry.records import PushedVersion, SandboxVersion
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)


def push_version(
    sandbox_version: SandboxVersion, sandbox: Workspace, production: Workspace, experiment: str
) -> PushedVersion:
    """Copy a sandbox model version into the production workspace's registry.

    Idempotent: a version already pushed (found by its lineage tag) is returned as it is. The
    production version is created only after every artifact is uploaded, so none points at a
    partial copy; a failed upload leaves a FAILED run and the next run pushes again.
    """
    name, version = sandbox_version.name, sandbox_version.version
    lineage = f"{sandbox.display_uri}#{name}/{version}"
    existing = _copy_of(production, name, lineage)
    if existing is not None:
        logger.info(
            "%s is already sandbox version %s and production version %s: nothing pushed",
            name,
            version,
            existing.version,
        )
        return _pushed(existing, lineage, already_pushed=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as download_dir:
        local_dir = sandbox.download(f"models:/{name}/{version}", download_dir)
        tags = {**sandbox_version.tags, **_lineage_tags(sandbox, sandbox_version, lineage)}
        pushed = _register_copy(production, local_dir, tags, experiment)
    logger.info(
        "Pushed sandbox %s v%s to production v%s in %.1f s",
        name,
        version,
        pushed.version,
        time.perf_counter() - started,
    )
    return _pushed(pushed, lineage, already_pushed=False)


def _lineage_tags(
    sandbox: Workspace, sandbox_version: SandboxVersion, lineage: str
) -> dict[str, str]:
    """The tags saying which sandbox version a production version is a copy of."""
    return {
        LINEAGE_TAG: lineage,
        "mnist.source_registry": sandbox.display_uri,
        "mnist.source_model": sandbox_version.name,
        "mnist.source_version": sandbox_version.version,
        "mnist.source_run": sandbox_version.run_id,
    }


def _copy_of(production: Workspace, name: str, lineage: str) -> ModelVersion | None:
    """The production version pushed from ``lineage`` (a sandbox version), or None."""
    with production.session() as client:
        ensure_registered_model(client, name)
        for existing in client.search_model_versions(f"name = '{name}'"):
            if existing.tags.get(LINEAGE_TAG) == lineage:
                return existing
    return None


def _register_copy(
    production: Workspace,
    local_dir: str,
    tags: dict[str, str],
    experiment: str,
) -> ModelVersion:
    """Upload the model into a new production run, then register it; a failed upload marks the
    run FAILED and registers nothing."""
    name = tags["mnist.source_model"]
    with production.session() as client:
        experiment_id = _experiment_id(client, production, experiment)
        run = client.create_run(
            experiment_id, run_name=f"push {name} v{tags['mnist.source_version']}", tags=tags
        )
        try:
            client.log_artifacts(run.info.run_id, local_dir, artifact_path="model")
        except Exception as exc:
            # Best effort: the server may be what failed; the upload error is what to report.
            with contextlib.suppress(Exception):
                client.set_terminated(run.info.run_id, "FAILED")
            raise production.error(
                exc, "could not store the model in its artifact store; nothing was registered"
            ) from production.scrubbed(exc)
        pushed = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags=tags,
            await_creation_for=AWAIT_CREATION_S,
        )
        client.set_terminated(run.info.run_id, "FINISHED")
    return pushed


def _experiment_id(client: MlflowClient, workspace: Workspace, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(experiment, artifact_location=workspace.artifact_location())


def _pushed(version: ModelVersion, lineage: str, *, already_pushed: bool) -> PushedVersion:
    return PushedVersion(
        name=version.name, version=version.version, lineage=lineage, already_pushed=already_pushed
    )
