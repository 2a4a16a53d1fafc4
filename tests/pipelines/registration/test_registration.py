"""Registration against two real basic-auth MLflow servers."""

import logging
import time

import mlflow
import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from mlflow.exceptions import MlflowException

from mnist_mlops.datasets import PictureSetDataset, RecordDataset
from mnist_mlops.pipelines.registration import create_pipeline
from mnist_mlops.pipelines.registration.nodes import (
    GateError,
    evaluate_candidate,
    log_candidate,
    push_to_production,
    register_in_sandbox,
)
from mnist_mlops.registry import FINGERPRINT_TAG, LINEAGE_TAG, TEST_ACCURACY_TAG
from mnist_mlops.serving import preprocessing, pyfunc
from mnist_mlops.workspaces import WorkspaceError
from tests.conftest import REAL_PICTURES, workspace
from tests.pipelines.registration.conftest import CHAMPION, passed_gate

DATA_REPORT = {"sha256": {"test_images": "ab" * 32}, "splits": {"test": {"images": 1000}}}


@pytest.fixture
def sandbox_tracking(servers, monkeypatch):
    """The sandbox server as MLflow's tracking server, its credentials process-wide as
    kedro-mlflow sets them."""
    for key, value in servers["sandbox"].credentials.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(servers["sandbox"].uri)
    mlflow.set_experiment("registration-tests")
    yield
    mlflow.set_tracking_uri(None)


@pytest.fixture
def sandbox_run(sandbox_tracking):
    """An active run on the sandbox server."""
    with mlflow.start_run() as run:
        yield run


def _register(servers, tiny_model, small_model_input, params, production=None):
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = production or workspace(servers["production"], "production")
    champion = {"strategy": "single_node", "run_id": "strategy-run"}
    candidate = log_candidate(tiny_model, champion)
    pictures = PictureSetDataset(filepath=str(REAL_PICTURES)).load()
    evaluation = evaluate_candidate(candidate, small_model_input, pictures, production, params)
    return candidate, register_in_sandbox(candidate, evaluation, DATA_REPORT, sandbox, params)


def _versions(servers, which, name):
    with workspace(servers[which], which).session() as client:
        return client.search_model_versions(f"name = '{name}'")


def _production_versions(servers, name):
    return _versions(servers, "production", name)


def test_push_copies_a_working_model_with_lineage(
    servers, sandbox_run, tiny_model, small_model_input, registration_params, test_images
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")

    started = time.perf_counter()
    pushed = push_to_production(sandbox_version, sandbox, production, registration_params)
    print(f"push between the two real servers: {time.perf_counter() - started:.1f} s")

    name = registration_params.model_name
    with production.session() as client:
        version = client.get_model_version(name, pushed.version)
        assert (
            version.tags[LINEAGE_TAG]
            == f"{servers['sandbox'].uri}#{name}/{sandbox_version.version}"
        )
        assert version.tags["mnist.source_version"] == sandbox_version.version
        assert version.tags["mnist.strategy"] == "single_node"
        assert version.tags["mnist.data_sha256.test_images"] == "ab" * 32
    served = production.load_pyfunc(f"models:/{name}/{pushed.version}")
    production_digits = served.predict(test_images)["digit"]
    assert "Pa55word" not in repr(version)
    sandbox_model = sandbox.load_pyfunc(f"models:/{name}/{sandbox_version.version}")
    np.testing.assert_array_equal(sandbox_model.predict(test_images)["digit"], production_digits)
    expected = tiny_model.predict(test_images, verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(production_digits, expected)

    # Re-running the push for the same sandbox version creates nothing new.
    count = len(_production_versions(servers, name))
    again = push_to_production(sandbox_version, sandbox, production, registration_params)
    assert again == pushed.model_copy(update={"already_pushed": True})
    assert len(_production_versions(servers, name)) == count


def test_wrong_password_fails_clearly_and_registers_nothing(
    servers, sandbox_run, tiny_model, small_model_input, registration_params
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    before = len(_production_versions(servers, registration_params.model_name))
    wrong = workspace(
        servers["production"], "production", credentials={"MLFLOW_TRACKING_PASSWORD": "guess-me-42"}
    )
    with pytest.raises(WorkspaceError, match=r"'production' at http://127\.0\.0\.1.*401") as error:
        push_to_production(
            sandbox_version, workspace(servers["sandbox"], "sandbox"), wrong, registration_params
        )
    assert "guess-me-42" not in str(error.value) and "Pa55word" not in str(error.value)
    assert len(_production_versions(servers, registration_params.model_name)) == before
    with workspace(servers["sandbox"], "sandbox").session() as client:
        version = client.get_model_version(sandbox_version.name, sandbox_version.version)
        assert version.status == "READY"


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
    assert any(
        v.version == pushed.version
        for v in _production_versions(servers, registration_params.model_name)
    )


def test_upload_failing_half_way_leaves_no_version_and_next_run_completes(
    servers, sandbox_run, tiny_model, small_model_input, registration_params, monkeypatch
):
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")
    before = {v.version for v in _production_versions(servers, registration_params.model_name)}
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
    assert {
        v.version for v in _production_versions(servers, registration_params.model_name)
    } == before
    with production.session() as client:
        experiment = client.get_experiment_by_name("pushed-models")
        failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert failed

    pushed = push_to_production(sandbox_version, sandbox, production, registration_params)
    assert pushed.version not in before


def test_gate_failure_registers_nothing_anywhere(
    servers, sandbox_run, tiny_model, small_model_input, registration_params
):
    name = registration_params.model_name
    before = len(_production_versions(servers, name))
    sandbox_before = len(_versions(servers, "sandbox", name))
    strict = registration_params.model_copy(update={"min_test_accuracy": 0.999})
    with pytest.raises(GateError, match=r"below registration.min_test_accuracy 0.9990 by 0\.\d{4}"):
        _register(servers, tiny_model, small_model_input, strict)
    assert len(_versions(servers, "sandbox", name)) == sandbox_before
    assert len(_production_versions(servers, name)) == before


def test_gate_refuses_a_regression_against_production(
    servers, sandbox_run, tiny_model, small_model_input, registration_params
):
    production = workspace(servers["production"], "production")
    _, sandbox_version = _register(servers, tiny_model, small_model_input, registration_params)
    pushed = push_to_production(
        sandbox_version, workspace(servers["sandbox"], "sandbox"), production, registration_params
    )
    with production.session() as client:
        client.set_model_version_tag(pushed.name, pushed.version, TEST_ACCURACY_TAG, "0.9990")
        client.set_registered_model_alias(pushed.name, "production", pushed.version)
    try:
        with pytest.raises(
            GateError, match=rf"below production version {pushed.version} \(0.9990\)"
        ):
            _register(servers, tiny_model, small_model_input, registration_params)
    finally:
        with production.session() as client:
            client.delete_registered_model_alias(pushed.name, "production")


def _run_registration(servers, tiny_model, small_model_input, params, folder):
    """``kedro run --pipeline registration`` on the champion: the pipeline in its own run, the
    versions saved as JSON as the catalog does (a memory dataset is released once consumed)."""
    inputs = {
        "champion_model": tiny_model,
        "champion": CHAMPION,
        "model_input": small_model_input,
        "data_report": DATA_REPORT,
        "sandbox_workspace": workspace(servers["sandbox"], "sandbox"),
        "production_workspace": workspace(servers["production"], "production"),
        "params:registration": params,
    }
    catalog = DataCatalog(
        {name: MemoryDataset(value, copy_mode="assign") for name, value in inputs.items()}
        | {"report_pictures": PictureSetDataset(filepath=str(REAL_PICTURES))}
        | {
            output: RecordDataset(filepath=str(folder / f"{output}.json"), record=record)
            for output, record in (
                ("sandbox_model_version", "mnist_mlops.registry.records.SandboxVersion"),
                ("production_model_version", "mnist_mlops.registry.records.PushedVersion"),
            )
        }
    )
    with mlflow.start_run():
        SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("sandbox_model_version"), catalog.load("production_model_version")


def test_rerunning_registration_on_the_same_model_adds_no_version_and_names_it(
    servers, sandbox_tracking, tiny_model, small_model_input, registration_params, caplog, tmp_path
):
    name = registration_params.model_name
    sandbox, production = _run_registration(
        servers, tiny_model, small_model_input, registration_params, tmp_path
    )
    assert not sandbox.already_registered and not production.already_pushed

    with caplog.at_level(logging.INFO, logger="mnist_mlops"):
        again = _run_registration(
            servers, tiny_model, small_model_input, registration_params, tmp_path
        )

    assert again == (
        sandbox.model_copy(update={"already_registered": True}),
        production.model_copy(update={"already_pushed": True}),
    )
    assert len(_versions(servers, "sandbox", name)) == 1
    assert len(_production_versions(servers, name)) == 1
    assert f"{name} is already sandbox version {sandbox.version} (fingerprint" in caplog.text
    assert (
        f"{name} is already sandbox version {sandbox.version} and production version "
        f"{production.version}: nothing pushed"
    ) in caplog.text
    assert f"{name} version {production.version} in production already has its card" in (
        caplog.text
    )
    with workspace(servers["production"], "production").session() as client:
        pushed = client.get_model_version(name, production.version)
    assert pushed.tags[FINGERPRINT_TAG] == sandbox.tags[FINGERPRINT_TAG]


def _log_and_register(servers, model, params):
    """The candidate logged and registered in the sandbox, the gate taken as passed."""
    candidate = log_candidate(model, {"strategy": "single_node", "run_id": "strategy-run"})
    sandbox = workspace(servers["sandbox"], "sandbox")
    return candidate, register_in_sandbox(candidate, passed_gate(0.5), DATA_REPORT, sandbox, params)


def test_the_same_weights_with_changed_preprocessing_are_a_new_version(
    servers, sandbox_run, tiny_model, registration_params, monkeypatch
):
    candidate, first = _log_and_register(servers, tiny_model, registration_params)
    sources = pyfunc.served_sources()
    stage = preprocessing.locate.__name__
    edited = sources[stage] + b"\nMIN_CONTRAST = 13.0\n"
    monkeypatch.setattr(pyfunc, "served_sources", lambda: {**sources, stage: edited})

    changed, second = _log_and_register(servers, tiny_model, registration_params)

    assert changed.fingerprint != candidate.fingerprint
    assert not second.already_registered and second.version != first.version
    assert second.tags[FINGERPRINT_TAG] == changed.fingerprint
    assert len(_versions(servers, "sandbox", registration_params.model_name)) == 2


def test_a_registration_failing_after_creating_its_version_leaves_none(
    servers, sandbox_run, tiny_model, registration_params, monkeypatch
):
    name = registration_params.model_name
    sandbox = workspace(servers["sandbox"], "sandbox")
    candidate = log_candidate(tiny_model, {"strategy": "single_node", "run_id": None})
    create_model_version = mlflow.MlflowClient.create_model_version

    def created_but_never_ready(self, *args, **kwargs):
        create_model_version(self, *args, **kwargs)
        raise MlflowException(f"Exceeded max wait time for model name: {name} to become READY")

    def register():
        return register_in_sandbox(
            candidate, passed_gate(0.5), DATA_REPORT, sandbox, registration_params
        )

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "create_model_version", created_but_never_ready)
        with pytest.raises(WorkspaceError, match=r"'sandbox'.*Exceeded max wait time"):
            register()
    assert _versions(servers, "sandbox", name) == []

    registered = register()
    assert not registered.already_registered
    assert [v.version for v in _versions(servers, "sandbox", name)] == [registered.version]
