"""The records nodes pass each other hold every model version as a string, whatever form a
registry hands it back in: a real SQLite registry and a real basic-auth MLflow server."""

import mlflow
import pytest
from pydantic import ValidationError

from mnist_mlops.registry.records import (
    DeployCandidate,
    DeploymentReport,
    GateEvaluation,
    PushedVersion,
    SandboxVersion,
    version_string,
)
from tests.conftest import workspace


def _records(version) -> list:
    """Every record that carries a version, built from ``version`` as the registry gave it."""
    return [
        GateEvaluation(
            test_accuracy=0.99,
            per_class={},
            production_version=version,
            production_test_accuracy=0.99,
            photo_images=0,
            photo_accuracy=0.0,
            photo_accuracy_by_category={},
            confusion_matrix=[],
            misread=[],
        ),
        SandboxVersion(name="m", version=version, run_id="r", tags={}, already_registered=False),
        PushedVersion(name="m", version=version, lineage="x#m/1", already_pushed=False),
        DeployCandidate(name="m", action="deploy", version=version),
        DeploymentReport(
            name="m", action="deploy", production=version, previous_production=version
        ),
    ]


def _versions_of(client: mlflow.MlflowClient, artifacts: str | None = None) -> list:
    """The first version's number as each registry call hands it back."""
    name = "records-test"
    run = client.create_run(client.create_experiment(name, artifact_location=artifacts))
    client.create_registered_model(name)
    created = client.create_model_version(
        name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "production", created.version)
    return [
        created.version,
        client.get_model_version(name, "1").version,
        client.get_model_version_by_alias(name, "production").version,
        client.search_model_versions(f"name = '{name}'")[0].version,
        client.get_registered_model(name).aliases["production"],
    ]


def _assert_string_versions(versions: list) -> None:
    for version in versions:
        for record in _records(version):
            fields = [
                getattr(record, field)
                for field in ("version", "production_version", "production", "previous_production")
                if hasattr(record, field)
            ]
            assert fields and all(value == "1" and type(value) is str for value in fields), record


def test_versions_from_a_sqlite_registry_are_strings_in_every_record(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/registry.db")
    versions = _versions_of(client, str(tmp_path / "artifacts"))
    assert int in {type(v) for v in versions}, "the SQL store no longer hands back ints"
    _assert_string_versions(versions)


def test_versions_from_a_basic_auth_server_are_strings_in_every_record(servers):
    with workspace(servers["production"], "production").session() as client:
        _assert_string_versions(_versions_of(client))


@pytest.mark.parametrize("given", [1, "1", " 1", 1.0, "01"])
def test_a_version_is_normalised_once(given):
    assert version_string(given) == "1"


@pytest.mark.parametrize("bad", [0, -1, "latest", "", 1.5, True, None])
def test_what_is_not_a_version_is_refused_where_the_record_is_made(bad):
    with pytest.raises(ValidationError, match="positive whole number"):
        PushedVersion(name="m", version=bad, lineage="x", already_pushed=False)


def test_a_record_refuses_a_field_it_does_not_know():
    with pytest.raises(ValidationError, match="extra_forbidden"):
        PushedVersion(name="m", version=1, lineage="x", already_pushed=False, alias="production")
