"""The deploy pipeline against a real basic-auth production server holding pushed versions."""

import uuid

import mlflow
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mnist_mlops.datasets import PictureSetDataset
from mnist_mlops.pipelines.deploy import create_pipeline
from mnist_mlops.pipelines.deploy.nodes import DeploymentError
from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
from mnist_mlops.pipelines.registration.nodes import (
    log_candidate,
    push_to_production,
    register_in_sandbox,
)
from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.serving import pyfunc
from tests.conftest import REAL_PICTURES, workspace
from tests.pipelines.registration.conftest import passed_gate

NAME = "deployed-cnn"  # its own model in the shared servers: the gate tests use mnist-cnn
PARAMS = {
    "model_name": NAME,
    "enabled": True,
    "version": None,
    "rollback": False,
    "mode": "direct",
    "min_test_accuracy": 0.95,
    "min_photo_accuracy": 0.8,
    "picture_batch_size": 32,
    "server_ready_timeout_s": 120,
    "infra_requests": 3,
}


@pytest.fixture
def push(servers, decent_model, monkeypatch):
    """Push a new version of the decent model from the sandbox server to the production one.

    Registration is keyed on what is served: each push serves the same weights with its own
    marker in the served code, so each is a new model, as after a preprocessing change.
    """
    sources = pyfunc.served_sources()

    def pushed_version() -> str:
        for key, value in servers["sandbox"].credentials.items():
            monkeypatch.setenv(key, value)
        marker = {"push": uuid.uuid4().bytes}
        monkeypatch.setattr(pyfunc, "served_sources", lambda: {**sources, **marker})
        mlflow.set_tracking_uri(servers["sandbox"].uri)
        mlflow.set_experiment("deploy-tests")
        with mlflow.start_run():
            candidate = log_candidate(decent_model, {"strategy": "single_node", "run_id": None})
        mlflow.set_tracking_uri(None)
        registration = RegistrationParameters(
            model_name=NAME,
            min_test_accuracy=0.0,
            max_regression=1.0,
            production_experiment="pushed-models",
        )
        sandbox = workspace(servers["sandbox"], "sandbox")
        sandbox_version = register_in_sandbox(
            candidate, passed_gate(0.985), {"sha256": {}}, sandbox, registration
        )
        production = workspace(servers["production"], "production")
        return push_to_production(sandbox_version, sandbox, production, registration).version

    return pushed_version


def deploy(servers, small_model_input, **params):
    catalog = DataCatalog(
        {
            "production_workspace": MemoryDataset(workspace(servers["production"], "production")),
            "mnist_test_images": MemoryDataset(small_model_input.load()["test_images"]),
            "mnist_test_labels": MemoryDataset(small_model_input.load()["test_labels"]),
            # The tuning set for both: the report set is read in tests/serving.
            "report_pictures": PictureSetDataset(filepath=str(REAL_PICTURES)),
            "tuning_pictures": PictureSetDataset(filepath=str(REAL_PICTURES)),
            "params:deployment": MemoryDataset(DeploymentParameters(**{**PARAMS, **params})),
            "deployment_report": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("deployment_report")


def aliases(servers):
    with workspace(servers["production"], "production").session() as client:
        found = client.search_registered_models(f"name = '{NAME}'")
    return found[0].aliases if found else {}


def promote_directly(servers, version: str) -> str:
    """Point production at ``version`` without a deploy run (the set-up of a later one)."""
    with workspace(servers["production"], "production").session() as client:
        client.set_registered_model_alias(NAME, "production", version)
    return version


def test_deploy_validates_describes_stages_infra_validates_and_promotes(
    servers, small_model_input, push
):
    before = aliases(servers).get("production")
    version = push()
    report = deploy(servers, small_model_input)

    assert report.production == version and report.previous_production == before
    assert report.validation.photo_accuracy >= 0.8 and report.infra.latency_p50_ms > 0
    categories = set(PictureSetDataset(filepath=str(REAL_PICTURES)).load()["category"])
    assert set(report.validation.photo_accuracy_by_category) == categories
    assert aliases(servers)["production"] == version
    assert aliases(servers)["staging"] == version
    if before:
        assert aliases(servers)["previous-production"] == before
    with workspace(servers["production"], "production").session() as client:
        model_version = client.get_model_version(NAME, version)
        assert "Validated" in model_version.description
        assert "Pa55word" not in model_version.description
        assert model_version.tags["mnist.deploy_status"] == "production"
        assert "rollback" in client.get_registered_model(NAME).description
    assert type(report).model_validate_json(report.model_dump_json()) == report


def test_canary_mode_makes_the_version_the_canary_beside_production(
    servers, small_model_input, push
):
    current = promote_directly(servers, push())
    version = push()
    report = deploy(servers, small_model_input, mode="canary")

    assert report.action == "canary" and report.canary == version
    assert report.production == current
    assert aliases(servers)["production"] == current and aliases(servers)["canary"] == version
    with workspace(servers["production"], "production").session() as client:
        tags = client.get_model_version(NAME, version).tags
        client.delete_registered_model_alias(NAME, "canary")  # the next tests deploy directly
    assert tags["mnist.deploy_status"] == "canary" and "mnist.canary_since" in tags


def test_failing_validation_leaves_production_unchanged(servers, small_model_input, push):
    current = promote_directly(servers, push())
    version = push()
    with pytest.raises(DeploymentError, match=r"below deployment\.min_test_accuracy 0\.9999"):
        deploy(servers, small_model_input, min_test_accuracy=0.9999)
    assert aliases(servers)["production"] == current
    with workspace(servers["production"], "production").session() as client:
        status = client.get_model_version(NAME, version).tags["mnist.deploy_status"]
    assert status.startswith("rejected: test accuracy")


def test_failing_infra_validation_leaves_production_unchanged(servers, small_model_input, push):
    current = aliases(servers).get("production")
    version = push()
    with pytest.raises(DeploymentError, match=r"not ready within 0\.01 s; its last log lines"):
        deploy(servers, small_model_input, server_ready_timeout_s=0.01)
    assert aliases(servers).get("production") == current
    assert aliases(servers).get("production") != version


def test_rollback_moves_production_back(servers, small_model_input, push):
    first = promote_directly(servers, push())
    second = push()
    deploy(servers, small_model_input, version=second)
    assert aliases(servers)["previous-production"] == first

    report = deploy(servers, small_model_input, rollback=True)
    assert (report.action, report.production) == ("rollback", first)
    assert aliases(servers)["production"] == first
    assert aliases(servers)["previous-production"] == second
    with workspace(servers["production"], "production").session() as client:
        rolled_back = client.get_model_version(NAME, second)
    assert rolled_back.tags["mnist.deploy_status"] == "rolled back: deployment.rollback=true"
    assert "rolled back: deployment.rollback=true" in rolled_back.description  # it has no card

    # Deploy never picks the rolled-back version again by itself, and says why.
    report = deploy(servers, small_model_input)
    assert (report.action, report.production) == ("nothing", first)
    assert aliases(servers)["production"] == first


def test_disabled_deployment_changes_nothing(servers, small_model_input):
    before = aliases(servers)
    report = deploy(servers, small_model_input, enabled=False)
    assert (report.action, report.reason) == (
        "skip",
        "deployment.enabled is false in this environment",
    )
    assert aliases(servers) == before
