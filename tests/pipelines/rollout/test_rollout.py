"""Canaries judged on live traffic: two real ``kedro serve`` servers writing their request logs
as parts into one bucket of the GCS emulator that ``kedro workspaces up`` runs (fake-gcs-server),
a real registry, the rollout pipeline reading every server's parts from the bucket.

A good challenger (production's weights) is promoted with clients sending throughout, none
failing; a bad one (it reads every image inverted) and a slow one (it sleeps 50 ms per call)
are rolled back, and production never changes for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mnist_mlops.datasets import RequestLogDataset
from mnist_mlops.devservices.stores import GcsStore
from mnist_mlops.pipelines.rollout import create_pipeline
from mnist_mlops.pipelines.rollout.parameters import RolloutParameters
from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.serving.pyfunc import MnistDigitModel
from mnist_mlops.workspaces import Workspace
from tests.serving.test_operations import kedro_project, kedro_serve

NAME = "mnist-cnn"
LOG_BUCKET, LOG_PREFIX = "mnist-logs", "requests/"
LOG = f"gs://{LOG_BUCKET}/{LOG_PREFIX}"
SERVING = {
    "serving.poll_s": 1,
    "serving.request_log_flush_s": 0.5,
    "serving.rollout.canary_fraction": 0.2,
    "serving.rollout.shadow_fraction": 1.0,
}
ROLLOUT = {
    "model_name": NAME,
    "challenger_alias": "canary",
    "min_requests": 150,
    "min_samples": 30,
    "thresholds": {
        "max_error_rate_increase": 0.01,
        "max_latency_ratio": 3.0,
        "min_shadow_agreement": 0.9,
        "max_confidence_drop": 0.05,
        "max_accuracy_drop": 0.03,
        "min_labelled_images": 50,
    },
}


class InvertedReader(MnistDigitModel):
    """Reads every image inverted: what a preprocessing mistake looks like to the rollout."""

    def prepare(self, model_input):
        return 255 - super().prepare(model_input)


class SlowReader(MnistDigitModel):
    def probabilities(self, pixels):
        time.sleep(0.05)
        return super().probabilities(pixels)


def variant(model: Path, folder: Path, cls: type) -> Path:
    """Production's logged model with its python model replaced by ``cls`` (pickled by value,
    as the project logs its own)."""
    copy = shutil.copytree(model, folder)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        (copy / "python_model.pkl").write_bytes(cloudpickle.dumps(cls()))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    return copy


@pytest.fixture(scope="module")
def registry(registry_uri, tmp_path_factory):
    """A copy of the shared registry: v1 production, v2 the same model, v3 inverted, v4 slow,
    v5 broken (its pickle is not one)."""
    root = tmp_path_factory.mktemp("rollout-registry")
    shutil.copy(registry_uri.removeprefix("sqlite:///"), root / "mlflow.db")
    uri = f"sqlite:///{root}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=root))
    finally:
        mlflow.set_tracking_uri(previous)
    assert (model / "python_model.pkl").exists()
    run_id = client.get_model_version(NAME, "1").run_id  # where a card would be
    for source in (
        model,
        variant(model, root / "bad", InvertedReader),
        variant(model, root / "slow", SlowReader),
    ):
        client.create_model_version(NAME, source=str(source), run_id=run_id)
    broken = shutil.copytree(model, root / "broken")
    (broken / "python_model.pkl").write_bytes(b"not a pickle")
    client.create_model_version(NAME, source=str(broken), run_id=run_id)
    return {"uri": uri, "client": client, "workspace": Workspace("production", uri)}


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """fake-gcs-server with the bucket ``mnist-logs``, as ``kedro workspaces up`` starts it for
    the production workspace; this process reads it as the servers write it."""
    if GcsStore.binary() is None:
        pytest.skip("needs fake-gcs-server (uv sync)")
    store = GcsStore(tmp_path_factory.mktemp("gcs"), free_port())
    store.start((LOG_BUCKET,), dict(os.environ))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", store.url)
        try:
            yield store
        finally:
            store.stop()


@pytest.fixture(scope="module")
def servers(registry, bucket, tmp_path_factory):
    """Two ``kedro serve --env gcp`` servers (one worker each) writing to one log folder in the
    bucket."""
    project = kedro_project(tmp_path_factory.mktemp("project"))
    params = ",".join(f"{key}={value}" for key, value in SERVING.items())
    env = {
        "GCP_MLFLOW_TRACKING_URI": registry["uri"],
        "MNIST_REQUEST_LOG": LOG,
        "STORAGE_EMULATOR_HOST": bucket.url,
    }
    processes = []
    for _ in range(2):
        port = free_port()
        command = kedro_serve(project, port, "--workers", "1", "--params", params)
        processes.append(
            ScoringProcess(command, port=port, env=env, cwd=project, ready_timeout_s=300)
        )
    threads = [threading.Thread(target=process.start) for process in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert all(process.process and process.process.poll() is None for process in processes)
        yield {
            "urls": [process.url for process in processes],
            "bucket": bucket,
            "project": project,
            "env": env,
        }
    finally:
        for process in processes:
            process.stop()


def answered_per_server(servers, since: str, until: str) -> dict[str, int]:
    """Requests each server (its pid in the parts' names) logged as answered from ``since`` to
    ``until``, read from the bucket."""
    counts: dict[str, int] = {}
    for blob in servers["bucket"].client().list_blobs(LOG_BUCKET, prefix=LOG_PREFIX):
        writer = blob.name.rsplit("-", 3)[1]
        lines = blob.download_as_bytes().decode().splitlines()
        answered = [
            r for r in map(json.loads, lines) if r["status"] == 200 and since <= r["time"] < until
        ]
        counts[writer] = counts.get(writer, 0) + len(answered)
    return counts


def version_of(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/version", timeout=10) as response:
        return json.load(response)


def wait_until_served(servers, production: str, challenger: str | None) -> None:
    deadline = time.monotonic() + 60
    while True:
        seen = [version_of(url) for url in servers["urls"]]
        served = [(s["model_version"], (s["challenger"] or {}).get("model_version")) for s in seen]
        if served == [(production, challenger)] * len(servers["urls"]):
            return
        assert time.monotonic() < deadline, served
        time.sleep(0.2)


def make_canary(registry, servers, version: str) -> str:
    """Alias ``version`` canary, as deploy does, once both servers serve it; its canary_since."""
    client = registry["client"]
    since = datetime.now(UTC).isoformat()
    client.set_registered_model_alias(NAME, "canary", version)
    client.set_model_version_tag(NAME, version, "mnist.canary_since", since)
    production = str(client.get_model_version_by_alias(NAME, "production").version)
    wait_until_served(servers, production, version)
    return since


class Clients:
    """Four clients sending labelled single MNIST images to both servers until stopped."""

    def __init__(self, servers, images: np.ndarray, labels: np.ndarray) -> None:
        self.urls, self.images, self.labels = servers["urls"], images, labels
        self.sent, self.failures, self.versions = 0, [], set()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.send, args=(i,)) for i in range(4)]

    def send(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self.done.is_set():
            at = int(rng.integers(len(self.images)))
            body = {
                "inputs": [self.images[at].tolist()],
                "params": {"labels": [int(self.labels[at])]},
            }
            request = urllib.request.Request(
                self.urls[self.sent % len(self.urls)] + "/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.versions.add(response.headers["X-Model-Version"])
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(repr(exc))
            self.sent += 1

    def until(self, count: int) -> None:
        target = self.sent + count
        while self.sent < target:
            time.sleep(0.05)

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()


@pytest.fixture(scope="module")
def clients(servers, mnist_raw):
    images, labels = mnist_raw["test_images"][:500], mnist_raw["test_labels"][:500]
    return lambda: Clients(servers, images, labels)


def rollout(registry, servers) -> dict:
    """The rollout pipeline as `kedro run --pipeline rollout` runs it, on the log folder."""
    time.sleep(1.5)  # the servers upload their buffered lines every 0.5 s
    catalog = DataCatalog(
        {
            "production_workspace": MemoryDataset(registry["workspace"]),
            "serving_request_log": RequestLogDataset(filepath=LOG),
            "params:rollout": MemoryDataset(RolloutParameters.model_validate(ROLLOUT)),
            "rollout_metrics": MemoryDataset(),
            "rollout_report": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("rollout_report")


def aliases(registry) -> dict[str, str]:
    return {k: str(v) for k, v in registry["client"].get_registered_model(NAME).aliases.items()}


def test_a_good_challenger_is_promoted_and_no_client_request_fails(registry, servers, clients):
    since = make_canary(registry, servers, "2")
    with clients() as sending:
        sending.until(300)
        uploaded = datetime.now(UTC).isoformat()  # the rollout reads after the next uploads
        report = rollout(registry, servers)
        wait_until_served(servers, "2", None)
        sending.until(40)
    assert report["action"] == "promote" and report["moved"], report
    assert sending.failures == [] and {"1", "2"} <= sending.versions
    evidence = report["evidence"]
    assert evidence["shadow_agreement"] == 1.0 and evidence["challenger"]["answers"] > 0
    assert aliases(registry) == {"production": "2", "previous-production": "1"}
    tags = registry["client"].get_model_version(NAME, "2").tags
    assert tags["mnist.deploy_status"] == "production" and "mnist.promoted_at" in tags
    # Both servers uploaded parts, and the decision counted the requests of both (all those
    # uploaded before it read the bucket, and a few more).
    per_server = answered_per_server(servers, since, uploaded)
    decided_on = evidence["production"]["answers"] + evidence["challenger"]["answers"]
    assert len(per_server) == 2 and min(per_server.values()) > 0, per_server
    assert decided_on >= sum(per_server.values()), (per_server, decided_on)


@pytest.mark.parametrize(
    ("version", "reason"), [("3", "shadow agreement"), ("4", "p99 scoring time")]
)
def test_a_bad_or_slow_challenger_is_rolled_back(registry, servers, clients, version, reason):
    make_canary(registry, servers, version)
    with clients() as sending:
        sending.until(120)
        report = rollout(registry, servers)
        wait_until_served(servers, "2", None)
    assert report["action"] == "rollback" and report["moved"], report
    assert any(r.startswith(reason) for r in report["reasons"]), report["reasons"]
    assert sending.failures == [] and sending.versions <= {"2", version}
    assert aliases(registry) == {"production": "2", "previous-production": "1"}
    rolled_back = registry["client"].get_model_version(NAME, version)
    assert rolled_back.tags["mnist.deploy_status"].startswith(f"rejected: rollout: {reason}")
    assert f"rejected: rollout: {reason}" in rolled_back.description  # no card: the history


def test_a_challenger_that_fails_to_load_gets_no_traffic(registry, servers, clients):
    registry["client"].set_registered_model_alias(NAME, "canary", "5")
    try:
        time.sleep(3)  # a few looks at the alias (poll_s 1): each load fails
        with clients() as sending:
            sending.until(40)
        assert sending.failures == [] and sending.versions == {"2"}
        assert [version_of(url)["challenger"] for url in servers["urls"]] == [None, None]
    finally:
        registry["client"].delete_registered_model_alias(NAME, "canary")


def test_kedro_run_rollout_without_a_canary_says_so_and_exits_0(registry, servers):
    project = servers["project"]
    kedro = str(Path(sys.executable).parent / "kedro")
    result = subprocess.run(
        [kedro, "run", "--pipeline", "rollout", "--env", "gcp"],
        cwd=project,
        env={**os.environ, **servers["env"]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((project / "data/08_reporting/rollout_report.json").read_text())
    assert report["action"] == "none" and not report["moved"]
    assert report["note"] == "no version holds the alias canary: nothing to decide"
