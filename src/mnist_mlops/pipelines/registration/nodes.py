"""Nodes of the registration pipeline: gate, sandbox registration, push to production."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.evaluation.real_pictures import picture_accuracy
from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.registry import (
    AWAIT_CREATION_S,
    FINGERPRINT_TAG,
    TEST_ACCURACY_TAG,
    ensure_registered_model,
    version_with_alias,
    versions_with_fingerprint,
)
from mnist_mlops.registry.model_card import Gate, Lineage, ModelCard, PictureAccuracy, VersionRef
from mnist_mlops.registry.model_card import store as card_store
from mnist_mlops.registry.model_card.figures import confusion_matrix, mnist_accuracy
from mnist_mlops.registry.outcomes import Rejected
from mnist_mlops.registry.push import push_version
from mnist_mlops.registry.records import Candidate, GateEvaluation, PushedVersion, SandboxVersion
from mnist_mlops.serving.pyfunc import FINGERPRINT_KEY, log_servable_model
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)


class GateError(Rejected):
    """The candidate failed a registration check: nothing was registered."""


def log_candidate(champion_model: Any, champion: dict[str, Any]) -> Candidate:
    """Log the champion as a servable pyfunc (ONNX, preprocessing included) in the active run,
    with the fingerprint of what it serves."""
    info = log_servable_model(champion_model, name="servable_model")
    logger.info("Logged the %s champion as %s", champion["strategy"], info.model_uri)
    return Candidate(
        model_uri=info.model_uri,
        model_id=info.model_id,
        run_id=info.run_id,
        fingerprint=(info.metadata or {})[FINGERPRINT_KEY],
        strategy=champion["strategy"],
        strategy_run_id=champion["run_id"],
    )


def evaluate_candidate(
    candidate: Candidate,
    model_input: ArrayBundle,
    real_pictures: pd.DataFrame,
    production: Workspace,
    registration: RegistrationParameters,
) -> GateEvaluation:
    """Evaluate the logged candidate on the MNIST test set and apply the registration gate;
    measure it on the real-picture set too, for its model card (not gated: deploy gates it).

    The candidate must reach ``min_test_accuracy`` and be no worse than the version holding
    ``production`` in the production registry by more than ``max_regression``.

    Raises:
        GateError: naming each failed check and by how much.
    """
    arrays = model_input.load()
    model = mlflow.pyfunc.load_model(candidate.model_uri)
    predicted = model.predict(arrays["test_images"].astype(np.float32))["digit"].to_numpy()
    labels = arrays["test_labels"]
    accuracy, per_class = _accuracy(predicted, labels)
    photo_accuracy, by_category = picture_accuracy(model, real_pictures, len(real_pictures))
    incumbent, incumbent_accuracy = _incumbent(production, registration.model_name)
    mlflow.log_metrics(
        {"candidate_test_accuracy": accuracy, "candidate_photo_accuracy": photo_accuracy}
        | per_class
    )
    _gate(accuracy, incumbent, incumbent_accuracy, registration)
    return GateEvaluation(
        test_accuracy=accuracy,
        per_class=per_class,
        production_version=incumbent,
        production_test_accuracy=incumbent_accuracy,
        photo_images=len(real_pictures),
        photo_accuracy=photo_accuracy,
        photo_accuracy_by_category=by_category,
        confusion_matrix=confusion_matrix(labels, predicted).tolist(),
        misread=[(int(i), int(predicted[i])) for i in np.flatnonzero(predicted != labels)],
    )


def _incumbent(production: Workspace, name: str) -> tuple[str | None, float | None]:
    """The version holding ``production`` and the test accuracy it was registered with (None
    for either when there is none)."""
    incumbent = version_with_alias(production, name, "production")
    if incumbent is None:
        return None, None
    accuracy = incumbent.tags.get(TEST_ACCURACY_TAG)
    return incumbent.version, float(accuracy) if accuracy is not None else None


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """Accuracy of the predicted digits, overall and per digit (MLflow metric names)."""
    per_class = {
        f"test_accuracy_digit_{digit}": float((predicted[labels == digit] == digit).mean())
        for digit in range(10)
    }
    return float((predicted == labels).mean()), per_class


def _gate(
    accuracy: float,
    incumbent_version: str | None,
    incumbent_accuracy: float | None,
    registration: RegistrationParameters,
) -> None:
    """Pass the candidate, or raise :class:`GateError` naming each failed check."""
    failures = _gate_failures(accuracy, incumbent_version, incumbent_accuracy, registration)
    if failures:
        raise GateError("Candidate rejected, nothing registered: " + "; ".join(failures))
    logger.info("Gate passed: test accuracy %.4f", accuracy)


def _gate_failures(
    accuracy: float,
    incumbent_version: str | None,
    incumbent_accuracy: float | None,
    registration: RegistrationParameters,
) -> list[str]:
    """Each gate check the candidate fails, with by how much."""
    failures = []
    minimum = registration.min_test_accuracy
    if accuracy < minimum:
        failures.append(
            f"test accuracy {accuracy:.4f} is below registration.min_test_accuracy {minimum:.4f} "
            f"by {minimum - accuracy:.4f}"
        )
    if incumbent_accuracy is not None:
        regression = incumbent_accuracy - accuracy
        if regression > registration.max_regression:
            failures.append(
                f"test accuracy {accuracy:.4f} is {regression:.4f} below production version "
                f"{incumbent_version} ({incumbent_accuracy:.4f}), more than "
                f"registration.max_regression {registration.max_regression}"
            )
    return failures


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def register_in_sandbox(
    candidate: Candidate,
    evaluation: GateEvaluation,
    data_report: dict[str, Any],
    sandbox: Workspace,
    registration: RegistrationParameters,
) -> SandboxVersion:
    """Register the gated candidate in the sandbox registry, tagged with its provenance.

    A model already registered (a version with the candidate's fingerprint) is not registered
    again: that version is returned, with ``already_registered`` true.
    """
    name, fingerprint = registration.model_name, candidate.fingerprint
    with sandbox.session() as client:
        ensure_registered_model(client, name)
        ready = [
            version
            for version in versions_with_fingerprint(client, name, fingerprint)
            if version.status == "READY"
        ]
        if ready:
            logger.info(
                "%s is already sandbox version %s (fingerprint %s): nothing registered",
                name,
                ready[0].version,
                fingerprint[:12],
            )
            return _sandbox_version(ready[0], already_registered=True)
        version = _create_version(
            client, name, candidate, _provenance(candidate, evaluation, data_report)
        )
    logger.info("Registered %s version %s in the sandbox registry", name, version.version)
    return _sandbox_version(version, already_registered=False)


def _provenance(
    candidate: Candidate, evaluation: GateEvaluation, data_report: dict[str, Any]
) -> dict[str, str]:
    """The tags of a new sandbox version: what it serves, where it came from, how it scored."""
    return {
        FINGERPRINT_TAG: candidate.fingerprint,
        "mnist.strategy": candidate.strategy,
        "mnist.source_run": candidate.run_id,
        "mnist.strategy_run": candidate.strategy_run_id or "",
        "mnist.git_commit": _git_commit(),
        TEST_ACCURACY_TAG: f"{evaluation.test_accuracy:.6f}",
        **{f"mnist.data_sha256.{k}": v for k, v in data_report["sha256"].items()},
    }


def _create_version(
    client: MlflowClient, name: str, candidate: Candidate, tags: dict[str, str]
) -> ModelVersion:
    """A new READY version of the candidate; if creating or awaiting it fails, any version made
    of it is deleted (best effort) so that none is left half-registered."""
    try:
        return client.create_model_version(
            name,
            source=candidate.model_uri,
            run_id=candidate.run_id,
            tags=tags,
            model_id=candidate.model_id,
            await_creation_for=AWAIT_CREATION_S,
        )
    except Exception:
        # No READY version had this fingerprint: any there now is this attempt's, or a failed
        # earlier one's.
        with contextlib.suppress(Exception):
            for version in versions_with_fingerprint(client, name, candidate.fingerprint):
                client.delete_model_version(name, version.version)
        raise


def _sandbox_version(version: ModelVersion, *, already_registered: bool) -> SandboxVersion:
    return SandboxVersion(
        name=version.name,
        version=version.version,
        run_id=version.run_id or "",
        tags=dict(version.tags),
        already_registered=already_registered,
    )


def push_to_production(
    sandbox_version: SandboxVersion,
    sandbox: Workspace,
    production: Workspace,
    registration: RegistrationParameters,
) -> PushedVersion:
    """Copy a sandbox model version into the production workspace's registry (see
    :func:`~mnist_mlops.registry.push.push_version`)."""
    return push_version(sandbox_version, sandbox, production, registration.production_experiment)


# The champion's figures the card shows beside its hyperparameters, when training measured them.
CARD_TRAINING_METRICS = ("validation_accuracy", "test_accuracy", "images_per_s", "wall_time_s")


def build_model_card(
    champion: dict[str, Any],
    evaluation: GateEvaluation,
    data_report: dict[str, Any],
    model_input: ArrayBundle,
    registration: RegistrationParameters,
) -> tuple[ModelCard, dict[str, bytes]]:
    """The gated candidate's model card and its pictures, from the gate's evaluation (one
    prediction pass). The lineage is added on publishing, once both registries have numbered
    the version."""
    arrays = model_input.load()
    mnist, pictures = mnist_accuracy(
        np.asarray(evaluation.confusion_matrix),
        evaluation.misread,
        (arrays["test_images"], arrays["test_labels"]),
    )
    card = ModelCard(
        name=registration.model_name,
        strategy=champion["strategy"],
        architecture=champion["architecture"],
        hyperparameters={
            k: v for k, v in champion["params"].items() if k not in ("strategy", "architecture")
        },
        training_metrics={
            k: v for k, v in champion["metrics"].items() if k in CARD_TRAINING_METRICS
        },
        data_sha256=data_report["sha256"],
        data_images={split: figures["images"] for split, figures in data_report["splits"].items()},
        mnist=mnist,
        pictures=PictureAccuracy(
            images=evaluation.photo_images,
            accuracy=evaluation.photo_accuracy,
            by_category=evaluation.photo_accuracy_by_category,
        ),
        gate=_passed_gate(evaluation, registration),
    )
    return card, pictures


def _passed_gate(evaluation: GateEvaluation, registration: RegistrationParameters) -> Gate:
    return Gate(
        decision="passed",
        min_test_accuracy=registration.min_test_accuracy,
        max_regression=registration.max_regression,
        production_version=evaluation.production_version,
        production_test_accuracy=evaluation.production_test_accuracy,
    )


def publish_model_card(
    card: ModelCard,
    pictures: dict[str, bytes],
    sandbox_version: SandboxVersion,
    production_version: PushedVersion,
    sandbox: Workspace,
    production: Workspace,
) -> dict[str, Any]:
    """Write the card, with its lineage, beside the version in both registries: files in the
    version's run (``model_card/``), summary as the version's description.

    A version's card is written once: registering the same model again keeps it, and with it
    deploy's section.
    """
    name = sandbox_version.name
    versions = (sandbox_version.version, production_version.version)
    lineage = Lineage(
        sandbox=VersionRef(
            registry=sandbox.display_uri, version=versions[0], run_id=sandbox_version.run_id
        ),
        production=VersionRef(
            registry=production.display_uri,
            version=versions[1],
            run_id=card_store.version_run(production, name, versions[1]),
        ),
        git_commit=sandbox_version.tags.get("mnist.git_commit", "unknown"),
    )
    card = card.model_copy(update={"lineage": lineage})
    for workspace, version in zip((sandbox, production), versions, strict=True):
        if card_store.has_card(workspace, name, version):
            logger.info("%s version %s in %s already has its card", name, version, workspace.name)
        else:
            card_store.publish(workspace, name, version, card, pictures)
    return {
        "name": name,
        "sandbox": versions[0],
        "production": versions[1],
        "path": card_store.CARD_FOLDER,
    }
