"""Serving benchmark: three servers in one run, requests interleaved by repeat.

- seed: the original's way, its own CNN (three 3x3 conv32 layers) logged with MLflow's
  tensorflow flavor and served by `mlflow models serve` (one worker, MLflow's default);
- mlflow: MLflow's scoring server serving our registered ONNX pyfunc
  (`mlflow models serve -m models:/mnist-cnn@production --env-manager local`), with as many
  workers as ours: the server a user would otherwise pick for this model;
- ours: `kedro serve --env gcp --workers N` on the same registry.

    .venv/bin/python benchmarks/serving.py [--repeats 3] [--workers 2]

Prints, per server, the median over repeats of: start-to-ready time, single-image p50 latency,
batch-64 throughput, and the requests/s of 4 and 16 concurrent single-image clients (threads of
this process, each with its own keep-alive connection), then the ratios the issue targets.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import mlflow
import numpy as np
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import IDXDataset
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.serving.pyfunc import log_servable_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preprocessing import report as report_preprocessing

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "mnist"


def post(connection: http.client.HTTPConnection, body: bytes) -> float:
    started = time.perf_counter()
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"server answered {response.status}")
    return time.perf_counter() - started


def concurrent_rate(port: int, body: bytes, clients: int, seconds: float = 5) -> float:
    """Requests/s of ``clients`` keep-alive clients sending ``body`` for ``seconds``."""

    def client(_: int) -> int:
        own = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        deadline, done = time.perf_counter() + seconds, 0
        while time.perf_counter() < deadline:
            post(own, body)
            done += 1
        own.close()
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        requests = sum(pool.map(client, range(clients)))
    return requests / (time.perf_counter() - started)


def measure(server: ScoringProcess, images: np.ndarray) -> dict[str, float]:
    one = json.dumps({"inputs": images[:1].tolist()}).encode()
    batch = json.dumps({"inputs": images[:64].tolist()}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    for _ in range(20):  # warm-up
        post(connection, one)
    latencies = [post(connection, one) for _ in range(300)]
    batch_times = [post(connection, batch) for _ in range(30)]
    connection.close()
    return {
        "ready_s": server.ready_after_s,
        "p50_ms": statistics.median(latencies) * 1000,
        "batch64_images_per_s": 64 * len(batch_times) / sum(batch_times),
        "clients4_requests_per_s": concurrent_rate(server.port, one, 4),
        "clients16_requests_per_s": concurrent_rate(server.port, one, 16),
    }


def registry(root: Path) -> tuple[str, str]:
    """A registry holding the seed's CNN (tensorflow flavor, a run's model) and ours
    (ONNX pyfunc, registered as mnist-cnn@production). Untrained: timing needs no training."""
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("benchmark", artifact_location=str(root / "artifacts"))
    hyperparameters = default_hyperparameters()
    with mlflow.start_run(experiment_id=experiment):
        seed_model = build_model("original_cnn", hyperparameters, total_steps=1)
        seed_uri = mlflow.tensorflow.log_model(seed_model, name="seed").model_uri
        ours = build_model("lean_cnn", hyperparameters, total_steps=1)
        log_servable_model(ours, registered_model_name="mnist-cnn")
    mlflow.MlflowClient().set_registered_model_alias("mnist-cnn", "production", "1")
    return uri, seed_uri


def default_hyperparameters() -> dict:
    """The default recipe's hyperparameters (conf/base/parameters_training.yml)."""
    with open(ROOT / "conf" / "base" / "parameters_training.yml") as f:
        return yaml.safe_load(f)["training"]["hyperparameters"]


def mlflow_serve(model_uri: str, env: dict[str, str], workers: int) -> ScoringProcess:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    return ScoringProcess(command, port=port, env=env, ready_timeout_s=300)


def kedro_serve(project: Path, env: dict[str, str], workers: int) -> ScoringProcess:
    port = free_port()
    kedro = str(Path(sys.executable).parent / "kedro")
    command = [kedro, "serve", "--env", "gcp", "--port", str(port), "--workers", str(workers)]
    return ScoringProcess(command, port=port, env=env, cwd=project, ready_timeout_s=300)


def kedro_project(root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    (project / "conf").symlink_to(ROOT / "conf")
    (project / "src").mkdir()
    return project


def report(medians: dict[str, dict[str, float]], repeats: int, workers: int) -> None:
    names = list(medians)
    print(f"\nmedian of {repeats} runs, {os.cpu_count()} cores (shared machine), workers={workers}")
    print(f"{'metric':28}" + "".join(f"{name:>12}" for name in names))
    for key in medians[names[0]]:
        print(f"{key:28}" + "".join(f"{medians[name][key]:12.2f}" for name in names))
    seed, theirs, ours = (medians[name] for name in names)
    targets = [
        ("vs seed: single-image p50", seed["p50_ms"] / ours["p50_ms"], ">= 20x faster"),
        (
            "vs seed: batch-64 throughput",
            ours["batch64_images_per_s"] / seed["batch64_images_per_s"],
            ">= 20x",
        ),
        (
            "vs seed: 4 clients req/s",
            ours["clients4_requests_per_s"] / seed["clients4_requests_per_s"],
            ">= 20x",
        ),
        ("vs mlflow: single-image p50", theirs["p50_ms"] / ours["p50_ms"], ">= 3x faster"),
        (
            "vs mlflow: 16 clients req/s",
            ours["clients16_requests_per_s"] / theirs["clients16_requests_per_s"],
            ">= 2x",
        ),
    ]
    print()
    for name, ratio, target in targets:
        print(f"{name:32} {ratio:7.1f}x   (target {target})")
    print(f"{'ours: ready after kedro serve':32} {ours['ready_s']:7.1f} s  (target <= 3 s)")


@click.command()
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
def main(repeats: int, workers: int) -> None:
    """Seed's way, MLflow's server and ours, side by side."""
    report_preprocessing()  # the picture path's own cost, before the servers
    images = IDXDataset(filepath=str(RAW / "t10k-images-idx3-ubyte.gz")).load().astype(float)
    root = Path(tempfile.mkdtemp(prefix="serving-benchmark-"))
    uri, seed_uri = registry(root)
    env = {"MLFLOW_TRACKING_URI": uri, "GCP_MLFLOW_TRACKING_URI": uri, "MNIST_SERVING_TOKEN": ""}
    env["MNIST_REQUEST_LOG"] = str(root / "requests.jsonl")
    project = kedro_project(root)
    servers = {
        "seed": lambda: mlflow_serve(seed_uri, env, 1),
        "mlflow": lambda: mlflow_serve("models:/mnist-cnn@production", env, workers),
        "ours": lambda: kedro_serve(project, env, workers),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for repeat in range(repeats):
        for name, make in servers.items():
            with make() as server:
                results[name].append(measure(server, images))
            print(f"repeat {repeat + 1}/{repeats} {name}: {results[name][-1]}", flush=True)
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    report(medians, repeats, workers)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
