"""16 clients through a promotion and a rollback: does any client request fail while aliases move?

One `kedro serve --env gcp --workers N` (conf/gcp's canary share and shadow, `serving.poll_s` 1)
on a registry of three untrained vgg_cnn versions (timing needs no training): v1 production,
v2 the same weights (a good canary), v3 other weights (a bad one). Clients send single images
on keep-alive connections all the time, while:

1. v2 is the canary; `kedro run --pipeline rollout --env gcp` promotes it (production -> v2);
2. v3 becomes the canary; the rollout rolls it back (its shadow agreement).

    .venv/bin/python benchmarks/serving_promote.py [--clients 16] [--workers 2]

Prints the requests sent and failed, the versions that answered, and the p50/p99 latency in
windows: steady, while each `kedro run` starts (its start-up shares the 2 cores), around each
move (from 1 s before the alias moved in the registry until 1 s after every worker serves the new
state) and after.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import mlflow
import numpy as np

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import IDXDataset
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.pyfunc import log_servable_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import default_hyperparameters, kedro_project, kedro_serve

NAME = "mnist-cnn"
RAW = Path(__file__).resolve().parents[1] / "data" / "01_raw" / "mnist"


def registry(root: Path) -> str:
    """v1 (production) and v2 the same logged model, v3 another seed's."""
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("benchmark", artifact_location=str(root / "artifacts"))
    client = mlflow.MlflowClient()
    for seed in (1, 3):
        hyperparameters = {**default_hyperparameters(), "seed": seed}
        with mlflow.start_run(experiment_id=experiment):
            model = build_model("vgg_cnn", hyperparameters, total_steps=1)
            log_servable_model(model, registered_model_name=NAME)
        if seed == 1:  # v2: the same weights and code as production
            first = client.get_model_version(NAME, "1")
            client.create_model_version(NAME, source=first.source, run_id=first.run_id)
    client.set_registered_model_alias(NAME, "production", "1")
    return uri


@dataclass
class Clients:
    """Keep-alive clients sending one image each until stopped; every answer recorded as
    (monotonic time, latency s, status, version)."""

    port: int
    count: int
    bodies: list[bytes]  # single MNIST images: other weights read them otherwise
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def send(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        sent = 0
        while not self.done.is_set():
            body, sent = self.bodies[sent % len(self.bodies)], sent + 1
            started = time.monotonic()
            try:
                connection.request("POST", "/invocations", body, headers)
                response = connection.getresponse()
                response.read()
                status, version = response.status, response.headers["X-Model-Version"]
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append((started, repr(exc)))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.answers.append((started, time.monotonic() - started, status, version))
            if status != 200:
                self.failures.append((started, f"HTTP {status}"))
        connection.close()

    def __enter__(self) -> Clients:
        self.threads = [threading.Thread(target=self.send) for _ in range(self.count)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()


def served(port: int) -> tuple[str, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/version")
    seen = json.loads(connection.getresponse().read())
    connection.close()
    return seen["model_version"], (seen["challenger"] or {}).get("model_version")


def until_served(port: int, workers: int, state: tuple[str, str | None]) -> float:
    """Wait until every worker (fresh connections spread over them) serves ``state``."""
    deadline = time.monotonic() + 120
    while sum(served(port) == state for _ in range(4 * workers)) < 4 * workers:
        assert time.monotonic() < deadline, f"never served {state}: {served(port)}"
        time.sleep(0.2)
    return time.monotonic()


def make_canary(client: mlflow.MlflowClient, version: str) -> None:
    client.set_registered_model_alias(NAME, "canary", version)
    since = datetime.now(UTC).isoformat()
    client.set_model_version_tag(NAME, version, "mnist.canary_since", since)


def rollout(project: Path, env: dict[str, str], uri: str, alias: str) -> tuple[float, dict]:
    """`kedro run --pipeline rollout --env gcp`; when ``alias`` moved in the registry (watched
    while it runs), and its report."""
    kedro = str(Path(sys.executable).parent / "kedro")
    client = mlflow.MlflowClient(uri)
    before = client.get_registered_model(NAME).aliases.get(alias)
    run = subprocess.Popen(
        [kedro, "run", "--pipeline", "rollout", "--env", "gcp"],
        cwd=project,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moved = float("nan")
    while run.poll() is None:
        if math.isnan(moved) and client.get_registered_model(NAME).aliases.get(alias) != before:
            moved = time.monotonic()
        time.sleep(0.1)
    assert run.returncode == 0, f"kedro run --pipeline rollout exited {run.returncode}"
    return moved, json.loads((project / "data/08_reporting/rollout_report.json").read_text())


def window(answers: list, start: float, end: float) -> str:
    latencies = [a[1] * 1000 for a in answers if start <= a[0] < end]
    if not latencies:
        return f"{'-':>8} {'-':>8} {0:>8}"
    p50, p99 = np.percentile(latencies, [50, 99])
    return f"{p50:8.2f} {p99:8.2f} {len(latencies):8d}"


@click.command()
@click.option("--clients", type=int, default=16, show_default=True)
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
@click.option("--steady-s", type=float, default=5, show_default=True)
def main(clients: int, workers: int, steady_s: float) -> None:
    """16 clients through a promotion and a rollback."""
    root = Path(tempfile.mkdtemp(prefix="serving-promote-benchmark-"))
    uri = registry(root)
    client = mlflow.MlflowClient(uri)
    make_canary(client, "2")
    env = {"GCP_MLFLOW_TRACKING_URI": uri, "MNIST_SERVING_TOKEN": ""}
    env["MNIST_REQUEST_LOG"] = str(root / "requests.jsonl")
    project = kedro_project(root)
    server = kedro_serve(project, env, workers)
    server.command += ["--params", "serving.poll_s=1"]
    marks: dict[str, float] = {}
    images = IDXDataset(filepath=str(RAW / "t10k-images-idx3-ubyte.gz")).load()[:200]
    bodies = [json.dumps({"inputs": [image.tolist()]}).encode() for image in images]
    with server, Clients(server.port, clients, bodies) as sending:
        until_served(server.port, workers, ("1", "2"))
        marks["start"] = time.monotonic()
        time.sleep(steady_s)
        marks["promote"] = time.monotonic()
        marks["moved"], promoted = rollout(project, env, uri, "production")
        marks["promoted"] = until_served(server.port, workers, ("2", None))
        make_canary(client, "3")
        marks["canary"] = until_served(server.port, workers, ("2", "3"))
        time.sleep(steady_s)
        marks["rollback"] = time.monotonic()
        marks["dropped"], rolled_back = rollout(project, env, uri, "canary")
        marks["rolled_back"] = until_served(server.port, workers, ("2", None))
        time.sleep(steady_s)
        marks["end"] = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)
    answers = sending.answers
    print(f"\n{clients} clients, {workers} workers, {os.cpu_count()} cores")
    print(f"load average at the end: {os.getloadavg()}")
    print(f"promote: {promoted['action']} moved={promoted['moved']}")
    print(f"rollback: {rolled_back['action']} moved={rolled_back['moved']}")
    print(f"sent {len(answers) + len(sending.failures)}, failed {len(sending.failures)}")
    for when, what in sending.failures[:10]:
        print(f"  failure at {when - marks['start']:.1f} s: {what}")
    versions = {v: sum(a[3] == v for a in answers) for v in sorted({a[3] for a in answers})}
    print(f"answered by version: {versions}")
    print(f"{'window':34} {'p50 ms':>8} {'p99 ms':>8} {'requests':>8}")
    windows = {
        "before (v1 + canary v2)": (marks["start"], marks["promote"]),
        "rollout run starting (promote)": (marks["promote"], marks["moved"] - 1),
        "production moved, +-1 s": (marks["moved"] - 1, marks["promoted"] + 1),
        "between (v2 + canary v3)": (marks["canary"], marks["rollback"]),
        "rollout run starting (roll back)": (marks["rollback"], marks["dropped"] - 1),
        "canary removed, +-1 s": (marks["dropped"] - 1, marks["rolled_back"] + 1),
        "after (v2 alone)": (marks["rolled_back"] + 1, marks["end"]),
    }
    for name, (start, end) in windows.items():
        print(f"{name:34} {window(answers, start, end)}  ({end - start:.1f} s)")


if __name__ == "__main__":
    main()
