"""The monitor pipeline on request logs written by a real scoring server."""

import json
import shutil
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mnist_mlops.datasets import RequestLogDataset
from mnist_mlops.pipelines.monitor import create_pipeline
from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters
from mnist_mlops.serving.process import ScoringProcess
from mnist_mlops.workspaces import Workspace
from tests.conftest import PROJECT_ROOT, RAW_MNIST

IMAGES = 600


def shifted(images: np.ndarray, shift: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if shift == "inverted":
        return 255 - images
    if shift == "rotated":
        return np.rot90(images, k=1, axes=(1, 2))
    if shift == "noisy":
        return np.clip(images + rng.normal(0, 90, images.shape), 0, 255).round()
    return images


@pytest.fixture(scope="module")
def request_logs(registry_uri, mnist_raw, tmp_path_factory):
    """One request log per kind of traffic, each written by a real server: labelled batches of
    50 test images, as they are or shifted. The four servers run side by side (their start-up,
    mostly imports, is what takes time)."""
    images = mnist_raw["test_images"][-IMAGES:].astype(np.float64)
    labels = mnist_raw["test_labels"][-IMAGES:].tolist()
    shifts = ("normal", "inverted", "rotated", "noisy")
    logs = {shift: tmp_path_factory.mktemp("logs") / f"{shift}.jsonl" for shift in shifts}

    def new_server() -> ScoringProcess:
        return ScoringProcess.for_model(
            "models:/mnist-cnn@production", env={"MLFLOW_TRACKING_URI": registry_uri}
        )

    servers: dict[str, ScoringProcess] = {}
    for shift in shifts:  # four different ports: none is bound before the servers start
        server = new_server()
        while server.port in {other.port for other in servers.values()}:
            server.log_path.unlink()
            server = new_server()
        server.command += ["--request-log", str(logs[shift])]
        servers[shift] = server

    def record(shift: str) -> None:
        server, pixels = servers[shift], shifted(images, shift)
        with server:
            for start in range(0, IMAGES, 50):
                body = {
                    "inputs": pixels[start : start + 50].tolist(),
                    "params": {"labels": labels[start : start + 50]},
                }
                request = urllib.request.Request(
                    f"{server.url}/invocations",
                    json.dumps(body).encode(),
                    {"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 200

    with ThreadPoolExecutor(len(shifts)) as pool:
        list(pool.map(record, shifts))  # re-raises the first failure
    return logs


def monitor(log, mnist_raw, **changes):
    with open(PROJECT_ROOT / "conf" / "base" / "parameters_monitor.yml") as f:
        params = yaml.safe_load(f)["monitoring"]
    params.update(changes)
    catalog = DataCatalog(
        {
            "serving_request_log": RequestLogDataset(filepath=str(log)),
            "mnist_train_images": MemoryDataset(mnist_raw["train_images"]),
            "mnist_train_labels": MemoryDataset(mnist_raw["train_labels"]),
            "params:monitoring": MemoryDataset(MonitoringParameters(**params)),
            "production_workspace": MemoryDataset(Workspace("production", "sqlite:///unused.db")),
            "monitoring_metrics": MemoryDataset(),
            "monitoring_report": MemoryDataset(),
            "monitoring_chart": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("monitoring_report")


def test_normal_traffic_raises_no_alarm(request_logs, mnist_raw):
    report = monitor(request_logs["normal"], mnist_raw)
    assert report["alarms"] == [] and report["retrain"] is False, report
    assert report["metrics"]["images"] == IMAGES
    assert report["metrics"]["labelled_images"] == IMAGES
    assert report["metrics"]["feedback_accuracy"] > 0.95


@pytest.mark.parametrize(
    ("shift", "alarms"),
    [
        ("inverted", {"intensity_drift", "ink_drift", "feedback_accuracy"}),
        ("rotated", {"class_mix_drift", "mean_confidence", "feedback_accuracy"}),
        ("noisy", {"intensity_drift", "ink_drift"}),
    ],
)
def test_shifted_traffic_triggers_retraining(request_logs, mnist_raw, shift, alarms):
    report = monitor(request_logs[shift], mnist_raw)
    assert report["retrain"] is True
    assert alarms <= set(report["alarms"]), report


def test_too_few_images_raise_no_alarm(request_logs, mnist_raw):
    report = monitor(request_logs["inverted"], mnist_raw, window_images=50)
    assert report["retrain"] is False and report["enough_evidence"] is False
    assert report["metrics"]["intensity_drift"] > 0.5  # measured all the same


def test_a_log_without_scored_images_is_a_clear_error(tmp_path, mnist_raw):
    log = tmp_path / "requests.jsonl"
    line = {"time": "t", "status": 400, "rows": [], "model_version": "1", "batch_size": 0}
    log.write_text(json.dumps(line) + "\n")
    with pytest.raises(Exception, match="holds no scored image"):
        monitor(log, mnist_raw)


def test_kedro_run_monitor_reports_to_the_production_workspace(request_logs, tmp_path, monkeypatch):
    """``kedro run --pipeline monitor --env gcp``: metrics, report and chart in MLflow."""
    (tmp_path / "data" / "10_serving").mkdir(parents=True)
    (tmp_path / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    shutil.copy(request_logs["noisy"], tmp_path / "data" / "10_serving" / "requests.jsonl")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GCP_MLFLOW_ARTIFACT_LOCATION", raising=False)
    # An absolute store: MLflow keeps one store per URI for the life of the process, so a
    # relative one would stay bound to this folder for later sessions in other folders.
    monkeypatch.setenv("GCP_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/production.db")
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(
        project_path=tmp_path, conf_source=str(PROJECT_ROOT / "conf"), env="gcp"
    ) as session:
        session.run(pipeline_name="monitor")

    report = json.loads((tmp_path / "data/08_reporting/monitoring_report.json").read_text())
    assert report["retrain"] is True
    assert (tmp_path / "data/08_reporting/monitoring.png").stat().st_size > 10_000
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns/production.db")
    (run,) = mlflow.search_runs(experiment_names=["mnist-mlops-production"], output_format="list")
    assert run.data.metrics["monitoring.ink_drift"] == pytest.approx(report["metrics"]["ink_drift"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"monitoring_report.json", "monitoring.png"} <= artifacts


def test_pictures_without_a_digit_count_as_wrong_and_apart(tmp_path, mnist_raw):
    """Rows with a null digit (no digit found), as the server logs them: left out of the input
    statistics and confidence, counted in no_digit_fraction and as wrong in feedback."""
    from mnist_mlops.serving.statistics import input_statistics

    images, labels = mnist_raw["test_images"][:40], mnist_raw["test_labels"][:40]
    read = [
        {"digit": int(label), "confidence": 0.99, "label": int(label), **stats}
        for label, stats in zip(labels, input_statistics(images.astype(np.float32)), strict=True)
    ]
    nothing = np.full((10, 28, 28), np.nan, np.float32)
    unread = [
        {"digit": None, "confidence": None, "label": 3, **stats}
        for stats in input_statistics(nothing)
    ]
    line = {"time": "t", "status": 200, "rows": read + unread, "model_version": "1"}
    log = tmp_path / "requests.jsonl"
    log.write_text(json.dumps({**line, "batch_size": 50}) + "\n")

    metrics = monitor(log, mnist_raw)["metrics"]

    assert metrics["images"] == 50 and metrics["no_digit_fraction"] == 0.2
    assert metrics["feedback_accuracy"] == 0.8
    assert metrics["mean_confidence"] == 0.99
