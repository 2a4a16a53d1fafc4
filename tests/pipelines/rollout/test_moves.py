"""Moving the aliases on a real SQLite registry: two runs at once, and aliases moved meanwhile."""

import threading

import mlflow
import pytest

from mnist_mlops.pipelines.rollout.evidence import Decision
from mnist_mlops.pipelines.rollout.nodes import Gathered, RolloutState, apply_decision
from mnist_mlops.workspaces import Workspace

NAME = "mnist-cnn"
PROMOTE = Decision(action="promote", reasons=[], missing_requests=0)
STATE = RolloutState(name=NAME, alias="canary", production="1", challenger="2", canary_since=None)


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """Version 1 in production, version 2 the canary."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=str(tmp_path))
    client.set_registered_model_alias(NAME, "production", "1")
    client.set_registered_model_alias(NAME, "canary", "2")
    return Workspace("production", uri)


def aliases(workspace: Workspace) -> dict[str, str]:
    with workspace.session() as client:
        return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


def test_two_runs_at_once_move_the_aliases_at_most_once(workspace):
    reports: list[dict] = []
    start = threading.Barrier(2)  # both write their first claim at once

    def run() -> None:
        start.wait()
        reports.append(apply_decision(PROMOTE, STATE, Gathered(evidence=None), workspace)[1])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(report["moved"] for report in reports) == [False, True], reports
    assert aliases(workspace) == {"production": "2", "previous-production": "1"}


def test_aliases_moved_since_they_were_read_move_nothing(workspace):
    with workspace.session() as client:
        client.set_registered_model_alias(NAME, "production", "2")  # a person promoted it
    _, report = apply_decision(PROMOTE, STATE, Gathered(evidence=None), workspace)
    assert not report["moved"] and "aliases moved since they were read" in report["note"]
    assert aliases(workspace) == {"production": "2", "canary": "2"}
