"""The whole flow against real workspace stores, as a user runs it after `kedro workspaces up`:
`kedro run --env azure`, `kedro run --pipeline deploy --env gcp`, `kedro serve --env gcp`,
monitor and batch_predict. Tiny parameters: a few hundred images, one epoch, one strategy."""

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mnist_mlops.serving.process import ScoringProcess, free_port
from tests.conftest import PROJECT_ROOT, RAW_MNIST
from tests.workspaces.conftest import blobs, gcs_objects, query

AZURE_PARAMS = {
    "data_prep": {"max_train_images": 640, "validation_images": 300},
    "training": {
        "strategies": "single_node",
        "hyperparameters": {"epochs": 1, "batch_size": 64, "learning_rate": 0.003},
    },
    "registration": {"min_test_accuracy": 0.3},
}
DEPLOY_PARAMS = {"deployment": {"min_test_accuracy": 0.3, "min_photo_accuracy": 0.0}}


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A scratch project directory: raw data linked in, local outputs written here."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_REQUEST_LOG", str(tmp_path / "requests.jsonl"))
    return tmp_path


def kedro_run(project_dir: Path, env: str, pipeline: str | None = None, params=None) -> None:
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(
        project_path=project_dir,
        conf_source=str(PROJECT_ROOT / "conf"),
        env=env,
        runtime_params=params,
    ) as session:
        session.run(pipeline_name=pipeline)


@pytest.fixture
def server_environments(monkeypatch):
    """The environment each scoring server actually got, read from /proc once it answers."""
    found: list[dict[str, str]] = []
    start = ScoringProcess.start

    def start_and_read_environment(self):
        start(self)
        raw = Path(f"/proc/{self.process.pid}/environ").read_bytes().decode()
        found.append(dict(item.split("=", 1) for item in raw.split("\0") if "=" in item))

    monkeypatch.setattr(ScoringProcess, "start", start_and_read_environment)
    return found


def served_predictions(project_dir: Path, images: np.ndarray) -> list[dict]:
    """`kedro serve --env gcp` as a user starts it, answering a real request."""
    port = free_port()
    kedro = str(Path(sys.executable).parent / "kedro")
    command = [kedro, "serve", "--env", "gcp", "--port", str(port)]
    with ScoringProcess(command, port=port, cwd=PROJECT_ROOT, ready_timeout_s=240) as server:
        body = json.dumps({"inputs": images.tolist()}).encode()
        request = urllib.request.Request(
            f"{server.url}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["predictions"]


def test_the_whole_flow_on_postgres_azure_blob_and_gcs(
    project_dir, workspace_variables, local_workspaces, server_environments, spark, mnist_raw
):
    kedro_run(project_dir, "azure", params=AZURE_PARAMS)
    kedro_run(project_dir, "gcp", "deploy", DEPLOY_PARAMS)
    deploy_servers = list(server_environments)  # the infra-validation server
    predictions = served_predictions(project_dir, mnist_raw["test_images"][:8])
    kedro_run(project_dir, "gcp", "monitor")
    kedro_run(project_dir, "gcp", "batch_predict")

    # Runs and registry rows are in each workspace's PostgreSQL.
    sandbox_runs = query(
        local_workspaces, "sandbox",
        "SELECT r.name FROM runs r JOIN experiments e USING (experiment_id) "
        "WHERE e.name = 'mnist-mlops'",
    )  # fmt: skip
    assert {"__default__", "single_node/vgg_cnn"} <= {name for (name,) in sandbox_runs}
    assert query(
        local_workspaces,
        "sandbox",
        # mnist-cnn only: the fault tests register their own model in the same workspaces
        "SELECT name, version FROM model_versions WHERE name = 'mnist-cnn'",
    ) == [("mnist-cnn", 1)]
    aliases = query(
        local_workspaces, "production",
        "SELECT alias, version FROM registered_model_aliases WHERE name = 'mnist-cnn'",
    )  # fmt: skip
    assert dict(aliases) == {"staging": 1, "production": 1}
    production_experiments = {
        name for (name,) in query(local_workspaces, "production", "SELECT name FROM experiments")
    }
    assert {"mnist-mlops-pushed-models", "mnist-mlops-production"} <= production_experiments

    # Artifacts are in the blob container and the bucket; the model input in the sandbox's blobs.
    assert any(name.endswith("/MLmodel") for name in blobs(local_workspaces, "mlflow"))
    assert blobs(local_workspaces, "mnist-data") == ["05_model_input/mnist.npz"]
    pushed = [name for name in gcs_objects(local_workspaces) if name.endswith("model/MLmodel")]
    assert pushed, gcs_objects(local_workspaces)
    assert not (project_dir / "data" / "05_model_input" / "mnist.npz").exists()

    # The served model answers, monitor and batch scoring used the production version.
    assert len(predictions) == 8 and all(p["digit"] in range(10) for p in predictions)
    report = json.loads((project_dir / "data/08_reporting/monitoring_report.json").read_text())
    assert report["metrics"]["images"] == 8
    scored = pd.read_parquet(project_dir / "data/07_model_output/batch_predictions.parquet")
    assert set(scored["model_version"]) == {"1"} and len(scored) == 10_000

    # Credentials never crossed: each server refused nothing (a crossed password is a 401),
    # and the infra-validation server held the production workspace's credentials alone.
    for workspace in local_workspaces.values():
        log = workspace.mlflow.log.read_text()
        assert " 401 " not in log, f"{workspace.name} refused a request: credentials crossed"
    (environment,) = deploy_servers
    sandbox, production = local_workspaces["sandbox"], local_workspaces["production"]
    assert environment["MLFLOW_TRACKING_USERNAME"] == production.settings.username
    assert environment["MLFLOW_TRACKING_PASSWORD"] == production.settings.password
    secrets = {sandbox.settings.password, sandbox.settings.store_key, sandbox.settings.username}
    assert not [k for k, v in environment.items() if any(s in v for s in secrets)]
    assert not [k for k in environment if k.startswith(("AZURE_", "GCP_"))]
