"""Registration against two real basic-auth MLflow servers."""

import time

import mlflow
import numpy as np
import pytest

from mnist_mlops.datasets import PictureSetDataset
from mnist_mlops.pipelines.registration.nodes import (
    GateError,
    evaluate_candidate,
    log_candidate,
    push_to_production,
    register_in_sandbox,
)
from mnist_mlops.registry import LINEAGE_TAG
from mnist_mlops.workspaces import WorkspaceError
from tests.conftest import REAL_PICTURES, workspace

DATA_REPORT = {"sha256": {"test_images": "ab" * 32}}


@pytest.fixture
def sandbox_run(servers, monkeypatch):
    """An active run on the sandbox server, its credentials process-wide as kedro-mlflow sets."""
    for key, value in servers["sandbox"].credentials.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(servers["sandbox"].uri)
    mlflow.set_experiment("registration-tests")
    with mlflow.start_run() as run:
        yield run
    mlflow.set_tracking_uri(None)


def _register(servers, tiny_model, small_model_input, params, production=None):
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = production or workspace(servers["production"], "production")
    champion = {"strategy": "single_node", "run_id": "strategy-run"}
    candidate = log_candidate(tiny_model, champion)
    pictures = PictureSetDataset(filepath=str(REAL_PICTURES)).load()
    evaluation = evaluate_candidate(candidate, small_model_input, pictures, production, params)
    return candidate, register_in_sandbox(candidate, evaluation, DATA_REPORT, sandbox, params)


def _production_versions(servers, name="mnist-cnn"):
    with workspace(servers["production"], "production").session() as client:
        return client.search_model_versions(f"name = '{name}'")


def test_push_copies_a_working_model_with_lineage(
    servers, sandbox_run, tiny_model, small_model_input, registration_params, test_images
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")

    started = time.perf_counter()
    pushed = push_to_production(sandbox_version, sandbox, production, registration_params)
    print(f"push between the two real servers: {time.perf_counter() - started:.1f} s")

    with production.session() as client:
        version = client.get_model_version("mnist-cnn", pushed["version"])
        assert (
            version.tags[LINEAGE_TAG]
            == f"{servers['sandbox'].uri}#mnist-cnn/{sandbox_version['version']}"
        )
        assert version.tags["mnist.source_version"] == sandbox_version["version"]
        assert version.tags["mnist.strategy"] == "single_node"
        assert version.tags["mnist.data_sha256.test_images"] == "ab" * 32
    served = production.load_pyfunc(f"models:/mnist-cnn/{pushed['version']}")
    production_digits = served.predict(test_images)["digit"]
    assert "Pa55word" not in repr(version)
    sandbox_model = sandbox.load_pyfunc(f"models:/mnist-cnn/{sandbox_version['version']}")
    np.testing.assert_array_equal(sandbox_model.predict(test_images)["digit"], production_digits)
    expected = tiny_model.predict(test_images, verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(production_digits, expected)

    # Re-running the push for the same sandbox version creates nothing new.
    count = len(_production_versions(servers))
    assert push_to_production(sandbox_version, sandbox, production, registration_params) == pushed
    assert len(_production_versions(servers)) == count


def test_wrong_password_fails_clearly_and_registers_nothing(
    servers, sandbox_run, tiny_model, small_model_input, registration_params
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    before = len(_production_versions(servers))
    wrong = workspace(
        servers["production"], "production", credentials={"MLFLOW_TRACKING_PASSWORD": "guess-me-42"}
    )
    with pytest.raises(WorkspaceError, match=r"'production' at http://127\.0\.0\.1.*401") as error:
        push_to_production(
            sandbox_version, workspace(servers["sandbox"], "sandbox"), wrong, registration_params
        )
    assert "guess-me-42" not in str(error.value) and "Pa55word" not in str(error.value)
    assert len(_production_versions(servers)) == before
    with workspace(servers["sandbox"], "sandbox").session() as client:
        assert client.get_model_version("mnist-cnn", sandbox_version["version"]).status == "READY"


def test_production_down_then_back(
    servers, sandbox_run, tiny_model, small_model_input, registration_params, monkeypatch
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    servers["production"].stop()
    try:
        with pytest.raises(WorkspaceError, match=r"'production'.*(Connection|connect)"):
            push_to_production(sandbox_version, sandbox, production, registration_params)
    finally:
        servers["production"].start()
    pushed = push_to_production(sandbox_version, sandbox, production, registration_params)
    assert any(v.version == pushed["version"] for v in _production_versions(servers))


def test_upload_failing_half_way_leaves_no_version_and_next_run_completes(
    servers, sandbox_run, tiny_model, small_model_input, registration_params, monkeypatch
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")
    before = {v.version for v in _production_versions(servers)}
    real_log_artifact = mlflow.MlflowClient.log_artifact
    uploads = []

    def upload_then_lose_connection(self, run_id, local_path, artifact_path=None):
        if uploads:
            raise ConnectionError("connection reset by peer")
        uploads.append(local_path)
        return real_log_artifact(self, run_id, local_path, artifact_path)

    def log_artifacts_one_by_one(self, run_id, local_dir, artifact_path=None):
        from pathlib import Path

        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                parent = str(path.parent.relative_to(local_dir))
                upload_then_lose_connection(
                    self,
                    run_id,
                    str(path),
                    "/".join(p for p in (artifact_path, parent) if p != "."),
                )

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "log_artifacts", log_artifacts_one_by_one)
        with pytest.raises(WorkspaceError, match="connection reset"):
            push_to_production(sandbox_version, sandbox, production, registration_params)
    assert uploads  # part of the model did reach the server
    assert {v.version for v in _production_versions(servers)} == before
    with production.session() as client:
        experiment = client.get_experiment_by_name("pushed-models")
        failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert failed

    pushed = push_to_production(sandbox_version, sandbox, production, registration_params)
    assert pushed["version"] not in before


def test_gate_failure_registers_nothing_anywhere(
    servers, sandbox_run, tiny_model, small_model_input, registration_params
):
    before = len(_production_versions(servers))
    with workspace(servers["sandbox"], "sandbox").session() as client:
        sandbox_before = len(client.search_model_versions("name = 'mnist-cnn'"))
    strict = registration_params.model_copy(update={"min_test_accuracy": 0.999})
    with pytest.raises(GateError, match=r"below registration.min_test_accuracy 0.9990 by 0\.\d{4}"):
        _register(servers, tiny_model, small_model_input, strict)
    with workspace(servers["sandbox"], "sandbox").session() as client:
        assert len(client.search_model_versions("name = 'mnist-cnn'")) == sandbox_before
    assert len(_production_versions(servers)) == before


def test_gate_refuses_a_regression_against_production(
    servers, sandbox_run, tiny_model, small_model_input, registration_params
):
    production = workspace(servers["production"], "production")
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    pushed = push_to_production(
        sandbox_version, workspace(servers["sandbox"], "sandbox"), production, registration_params
    )
    with production.session() as client:
        client.set_model_version_tag(
            "mnist-cnn", pushed["version"], "mnist.test_accuracy", "0.9990"
        )
        client.set_registered_model_alias("mnist-cnn", "production", pushed["version"])
    try:
        with pytest.raises(
            GateError, match=rf"below production version {pushed['version']} \(0.9990\)"
        ):
            _register(servers, tiny_model, small_model_input, registration_params)
    finally:
        with production.session() as client:
            client.delete_registered_model_alias("mnist-cnn", "production")
