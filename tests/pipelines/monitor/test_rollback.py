"""Automatic rollback after a promotion, on a real registry and request-log lines as the server
writes them."""

import json
from datetime import UTC, datetime, timedelta

import mlflow
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import pipeline
from kedro.runner import SequentialRunner

from mnist_mlops.datasets import RequestLogDataset
from mnist_mlops.pipelines.monitor import create_pipeline
from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters
from mnist_mlops.workspaces import Workspace
from tests.conftest import PROJECT_ROOT

NAME = "mnist-cnn"


@pytest.fixture
def promoted(tmp_path):
    """Version 2 promoted ``promoted_at`` over version 1, in a real SQLite registry."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    client.create_registered_model(NAME)
    run = client.create_run(client.create_experiment("pushed"))  # where a card would be
    for _ in range(2):
        client.create_model_version(NAME, source=str(tmp_path), run_id=run.info.run_id)
    client.set_registered_model_alias(NAME, "previous-production", "1")
    client.set_registered_model_alias(NAME, "production", "2")

    def at(when: datetime) -> Workspace:
        client.set_model_version_tag(NAME, "2", "mnist.promoted_at", when.isoformat())
        return Workspace("production", uri)

    return at, client


def log(tmp_path, version: str, right: bool, count: int = 120):
    path = tmp_path / "requests.jsonl"
    line = {
        "time": datetime.now(UTC).isoformat(),
        "status": 200,
        "latency_ms": 1.0,
        "scoring_ms": 0.6,
        "model_version": version,
        "rows": [
            {
                "digit": 3,
                "confidence": 0.97,
                "label": 3 if right else 5,
                "mean_intensity": 30.0,
                "ink_fraction": 0.2,
            }
        ],
    }
    path.write_text("".join(json.dumps(line) + "\n" for _ in range(count)))
    return path


def guard(log_path, workspace, **changes):
    with open(PROJECT_ROOT / "conf" / "base" / "parameters_monitor.yml") as f:
        params = yaml.safe_load(f)["monitoring"]
    params.update({"auto_rollback": True, **changes})
    catalog = DataCatalog(
        {
            "serving_request_log": RequestLogDataset(filepath=str(log_path)),
            "drift_report": MemoryDataset({"retrain": False, "alarms": []}),
            "production_workspace": MemoryDataset(workspace),
            "params:monitoring": MemoryDataset(MonitoringParameters(**params)),
            "monitoring_report": MemoryDataset(),
        }
    )
    SequentialRunner().run(pipeline(create_pipeline()).only_nodes("guard_promotion"), catalog)
    return catalog.load("monitoring_report")


def test_a_promotion_whose_live_accuracy_collapses_is_rolled_back(tmp_path, promoted):
    at, client = promoted
    report = guard(log(tmp_path, "2", right=False), at(datetime.now(UTC) - timedelta(minutes=5)))
    assert report["retrain"] is True and "auto_rollback" in report["alarms"]
    assert report["rollback"]["rolled_back"] and report["rollback"]["production"] == "1"
    assert report["rollback"]["reasons"][0].startswith("live accuracy 0.000 on 120")
    assert str(client.get_registered_model(NAME).aliases["production"]) == "1"
    version = client.get_model_version(NAME, "2")
    assert version.tags["mnist.deploy_status"].startswith("rolled back: monitoring: live accuracy")
    assert "rolled back: monitoring: live accuracy" in version.description  # no card here


@pytest.mark.parametrize(
    ("right", "minutes", "changes"),
    [(True, 5, {}), (False, 60 * 30, {}), (False, 5, {"auto_rollback": False})],
    ids=["healthy", "promoted-too-long-ago", "auto-rollback-off"],
)
def test_no_rollback_otherwise(tmp_path, promoted, right, minutes, changes):
    at, client = promoted
    workspace = at(datetime.now(UTC) - timedelta(minutes=minutes))
    report = guard(log(tmp_path, "2", right=right), workspace, **changes)
    assert report["retrain"] is False and not report["rollback"].get("rolled_back")
    assert str(client.get_registered_model(NAME).aliases["production"]) == "2"
