"""The life of a model after its first day, as a user (and the CI/CD/CT workflows) types it:
``scripts/lifecycle.sh`` (what the workflows and the Makefile run) ``retrain``, ``deploy``,
``rollout``, ``monitor``, ``rollback`` and ``run``, each a real ``kedro run`` in a scratch
project, with a real ``kedro serve --env gcp`` following ``production`` and ``canary`` throughout.

Run on the embedded default (two local SQLite stores) and on the local workspaces of ``kedro
workspaces up`` (basic-auth MLflow servers on PostgreSQL, Azure Blob and GCS emulators). After
each step the registries, aliases, tags, model cards, summaries and exit codes are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.workspaces import Workspace
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

# Its own registered model: the whole-flow and fault tests share the local workspaces, and count
# the versions of mnist-cnn and of their own models.
NAME = "lifecycle-cnn"
MODEL = {
    f"{section}.model_name": NAME
    for section in ("registration", "deployment", "rollout", "monitoring")
}
KEDRO = str(Path(sys.executable).parent / "kedro")
TINY = {
    "data_prep.max_train_images": 640,
    "data_prep.validation_images": 300,
    "training.strategies": "single_node",
    "training.hyperparameters.epochs": 1,
    "training.hyperparameters.batch_size": 64,
    "training.hyperparameters.learning_rate": 0.003,
    "registration.min_test_accuracy": 0.3,
}
DEPLOY = {  # conf/gcp: the first version goes to production, later ones to canary first
    "deployment.min_test_accuracy": 0.3,
    "deployment.min_photo_accuracy": 0.0,
    "deployment.infra_requests": 1,
}
# Retraining as the CT workflow does, on twice the images; the quick model may read a little
# worse than production's on MNIST test, which the gate then tolerates.
RETRAIN = TINY | {"data_prep.max_train_images": 1280, "registration.max_regression": 1}
MONITOR = {"monitoring.min_images": 60, "monitoring.thresholds.min_labelled_images": 30}
# Two quick models read MNIST differently enough to fail the shipped agreement and accuracy
# thresholds (they are judged in tests/pipelines/rollout): here the canary must only get through.
ROLLOUT = {
    "rollout.min_requests": 40,
    "rollout.thresholds.min_shadow_agreement": 0.0,
    "rollout.thresholds.max_accuracy_drop": 1.0,
    "rollout.thresholds.max_confidence_drop": 1.0,
    "rollout.thresholds.max_latency_ratio": 100.0,
}


def params(values: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in values.items())


@dataclass
class Life:
    """A scratch project, the stores it registers into, and the time each step took."""

    project: Path
    stores: dict[str, Workspace]  # sandbox, production
    times: dict[str, float] = field(default_factory=dict)

    def step(self, step: str, values: dict, name: str, expect: int = 0) -> str:
        """``scripts/lifecycle.sh <step> <params>`` with this test's kedro; its whole output."""
        started = time.monotonic()
        run = subprocess.run(
            [str(PROJECT_ROOT / "scripts" / "lifecycle.sh"), step, params(MODEL | values)],
            cwd=self.project,
            env={**os.environ, "KEDRO": KEDRO},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        self.times[name] = self.times.get(name, 0.0) + time.monotonic() - started
        assert run.returncode == expect, (
            f"exit {run.returncode}, not {expect}:\n{run.stdout[-4000:]}"
        )
        return run.stdout

    def summary(self) -> str:
        return (self.project / "data/08_reporting/run_summary.md").read_text()

    def report(self, name: str) -> dict:
        return json.loads((self.project / f"data/08_reporting/{name}.json").read_text())

    def client(self, which: str) -> mlflow.MlflowClient:
        """A client of the store; the workspace binds its credentials to the store's origin."""
        with self.stores[which].session() as client:
            return client

    def versions(self, which: str) -> list[str]:
        found = self.client(which).search_model_versions(f"name = '{NAME}'")
        return sorted((str(v.version) for v in found), key=int)

    def aliases(self) -> dict[str, str]:
        aliases = self.client("production").get_registered_model(NAME).aliases
        return {alias: str(version) for alias, version in aliases.items()}

    def version(self, number: str):
        return self.client("production").get_model_version(NAME, number)


@pytest.fixture
def life(tmp_path, monkeypatch, request) -> Life:
    """A scratch project on the backend the test names; the request log in it."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "01_raw").symlink_to(PROJECT_ROOT / "data" / "01_raw")
    for shared in ("conf", "pyproject.toml"):
        (project / shared).symlink_to(PROJECT_ROOT / shared)
    (project / "src").mkdir()  # Kedro wants the folder; the package is installed
    monkeypatch.setenv("MNIST_REQUEST_LOG", str(project / "requests.jsonl"))
    monkeypatch.setenv("COLUMNS", "400")
    for variable in ("KEDRO_ENV", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    if request.param == "embedded":
        stores = {
            name: Workspace(name, f"sqlite:///{project}/mlruns/{name}.db")
            for name in ("sandbox", "production")
        }
        return Life(project, stores)
    variables = request.getfixturevalue("workspace_variables")
    stores = {
        name: Workspace(
            name,
            variables[f"{prefix}_MLFLOW_TRACKING_URI"],
            credentials={
                "MLFLOW_TRACKING_USERNAME": variables[f"{prefix}_MLFLOW_USERNAME"],
                "MLFLOW_TRACKING_PASSWORD": variables[f"{prefix}_MLFLOW_PASSWORD"],
            },
        )
        for name, prefix in (("sandbox", "AZURE"), ("production", "GCP"))
    }
    return Life(project, stores)


@pytest.fixture
def server(life) -> Iterator[ScoringProcess]:
    """``kedro serve --env gcp`` in the scratch project, following production every second;
    started by the test once a version is in production."""
    port = free_port()
    command = [KEDRO, "serve", "--env", "gcp", "--port", str(port)]
    command += ["--params", f"serving.poll_s=1,serving.model_name={NAME}"]
    process = ScoringProcess(command, port=port, cwd=life.project, ready_timeout_s=240)
    yield process
    process.stop()


def served_version(server: ScoringProcess) -> str:
    with urllib.request.urlopen(f"{server.url}/version", timeout=10) as response:
        return str(json.load(response)["model_version"])


def await_version(server: ScoringProcess, version: str, timeout_s: float = 60) -> None:
    """Wait until the server answers with ``version`` (it follows the alias, no restart)."""
    deadline = time.monotonic() + timeout_s
    while served_version(server) != version:
        assert time.monotonic() < deadline, f"still serving {served_version(server)}"
        time.sleep(0.5)
    pid = server.process.pid
    assert server.process.poll() is None and server.process.pid == pid


def await_challenger(server: ScoringProcess, version: str, timeout_s: float = 60) -> None:
    """Wait until the server follows ``version`` as its challenger (the canary alias)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"{server.url}/version", timeout=10) as response:
            challenger = json.load(response)["challenger"]
        if challenger and str(challenger["model_version"]) == version:
            return
        assert time.monotonic() < deadline, f"challenger still {challenger}"
        time.sleep(0.5)


def send_traffic(
    server: ScoringProcess, images: np.ndarray, labels: np.ndarray, batch: int = 1
) -> None:
    """The images with their labels as feedback, ``batch`` per request (one per request: each
    is answered by the canary or shadowed by it)."""
    for start in range(0, len(images), batch):
        body = {
            "inputs": images[start : start + batch].tolist(),
            "params": {"labels": labels[start : start + batch].tolist()},
        }
        request = urllib.request.Request(
            f"{server.url}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


def card_of(life: Life, version: str) -> dict:
    """The model card JSON beside a production version."""
    client = life.client("production")
    run_id = client.get_model_version(NAME, version).run_id
    path = client.download_artifacts(run_id, "model_card/model_card.json", str(life.project))
    return json.loads(Path(path).read_text())


def no_traceback(output: str) -> None:
    assert "Traceback" not in output and "raise " not in output, output[-3000:]


def stopped_lines(summary: str) -> list[str]:
    return summary.split("## Stopped", 1)[1].splitlines()


@pytest.mark.parametrize("life", ["embedded", "workspaces"], indirect=True)
def test_the_life_of_a_model(life, server, mnist_raw):
    # 1. First day: train, register v1, push, deploy; the server follows production.
    life.step("retrain", TINY, "1 first run")
    life.step("deploy", DEPLOY, "1 first run")
    assert life.versions("sandbox") == ["1"] and life.versions("production") == ["1"]
    assert life.aliases()["production"] == "1"
    server.start()
    assert served_version(server) == "1"

    # 2. Drifted traffic with feedback labels: monitoring asks for a retrain.
    inverted = 255 - mnist_raw["test_images"][:80]  # white paper, dark ink
    send_traffic(server, inverted, mnist_raw["test_labels"][:80], batch=20)
    life.step("monitor", MONITOR, "2 monitor")
    assert life.report("monitoring_report")["retrain"] is True

    # 3. Retrain on twice the images: v2 gated against production v1, pushed, deployed as the
    #    canary; live traffic; the rollout promotes it and the running server answers with v2;
    #    v2's card compares it with v1.
    output = life.step("retrain", RETRAIN, "3 retrain")
    no_traceback(output)
    gate = life.report("gate_evaluation")
    assert gate["production_version"] == "1" and gate["production_test_accuracy"] > 0
    assert "of production version 1" in life.summary()
    life.step("deploy", DEPLOY, "3 retrain")
    assert life.aliases() == {"production": "1", "canary": "2", "staging": "2"}
    assert life.version("2").tags["mnist.deploy_status"] == "canary"
    await_challenger(server, "2")
    send_traffic(server, mnist_raw["test_images"][100:160], mnist_raw["test_labels"][100:160])
    life.step("rollout", ROLLOUT, "3 retrain")
    assert life.report("rollout_report")["action"] == "promote", life.report("rollout_report")
    assert life.aliases() == {"production": "2", "previous-production": "1", "staging": "2"}
    await_version(server, "2")
    card = card_of(life, "2")
    assert card["gate"]["production_version"] == "1" and card["deployment"] is not None
    assert "production version 1 at" in life.version("2").description

    # 4. Rollback: production back to v1, the server follows; v2 is tagged and its card says why.
    life.step("rollback", {}, "4 rollback")
    assert life.aliases()["production"] == "1" and life.aliases()["previous-production"] == "2"
    await_version(server, "1")
    rolled_back = life.version("2")
    assert rolled_back.tags["mnist.deploy_status"] == "rolled back: deployment.rollback=true"
    assert [h["status"] for h in card_of(life, "2")["history"]] == ["rolled back"]
    assert "**rolled back**: deployment.rollback=true" in rolled_back.description
    assert f"Rolled back: {NAME} version 1 is production again." in life.summary()

    # 5. The whole flow again, nothing changed (same seed): nothing registered, pushed or
    #    deployed (v2 was rolled back), production stays v1, exit 0, and the summary says so.
    output = life.step("run", RETRAIN | DEPLOY, "5 rerun")
    summary = " ".join(life.summary().split())
    assert f"Already registered (same fingerprint), nothing added: {NAME} version 2" in summary
    assert f"Already in the production registry as {NAME} version 2" in summary
    assert f"Nothing deployed: {NAME} version 2 is not deployed again (rolled back" in summary
    assert life.versions("sandbox") == ["1", "2"] and life.versions("production") == ["1", "2"]
    assert life.aliases()["production"] == "1"
    output = life.step("deploy", DEPLOY, "5 rerun")
    assert f"Nothing deployed: No pushed version of {NAME} is waiting" in " ".join(
        life.summary().split()
    )

    # 6. A worse candidate: rejected by the gate with a clean message and exit code 3.
    worse = TINY | {"data_prep.max_train_images": 320, "registration.min_test_accuracy": 0.999}
    output = life.step("retrain", worse, "6 rejected", expect=3)
    no_traceback(output)
    assert "Stopped (exit code 3): Candidate rejected, nothing registered" in output
    stopped = stopped_lines(life.summary())
    assert len(stopped) <= 14 and "Exit code 3." in stopped
    assert life.versions("sandbox") == ["1", "2"] and life.aliases()["production"] == "1"

    # 7. Deploy of a version failing validation (v2 named, an impossible threshold): nothing
    #    promoted, the version tagged rejected, exit code 3.
    failing = DEPLOY | {"deployment.version": 2, "deployment.min_test_accuracy": 0.9999}
    output = life.step("deploy", failing, "7 deploy rejected", expect=3)
    no_traceback(output)
    assert life.aliases()["production"] == "1" and "staging" in life.aliases()
    assert life.version("2").tags["mnist.deploy_status"].startswith("rejected: test accuracy")
    assert [h["status"] for h in card_of(life, "2")["history"]] == ["rolled back", "rejected"]

    # Nothing to roll back to is its own exit code once previous-production is gone.
    life.client("production").delete_registered_model_alias(NAME, "previous-production")
    output = life.step("rollback", {}, "8 nothing to roll back", expect=4)
    no_traceback(output)
    assert "no previous-production version to roll back to" in output
    print("lifecycle step times (s):", {k: round(v, 1) for k, v in life.times.items()})
