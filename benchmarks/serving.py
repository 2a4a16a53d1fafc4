"""Serving benchmark: the original's way (Keras CNN, MLflow tensorflow flavor, `mlflow models
serve`) against ours (ONNX pyfunc, `python -m mnist_mlops.serving.app`), same weights, one run.

    .venv/bin/python benchmarks/serving.py [--repeats 3]

Prints, for each server, the median over repeats of: start-to-ready time, single-image p50
latency, batch-64 throughput and the requests/s of four concurrent single-image clients, with
ratios to the baseline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import IDXDataset
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.serving.pyfunc import log_servable_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preprocessing import report as report_preprocessing

RAW = Path(__file__).resolve().parents[1] / "data" / "01_raw" / "mnist"


def post(connection: http.client.HTTPConnection, body: bytes) -> float:
    started = time.perf_counter()
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"server answered {response.status}")
    return time.perf_counter() - started


def measure(server: ScoringProcess, images: np.ndarray) -> dict[str, float]:
    one = json.dumps({"inputs": images[:1].tolist()}).encode()
    batch = json.dumps({"inputs": images[:64].tolist()}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    for _ in range(20):  # warm-up
        post(connection, one)
    latencies = [post(connection, one) for _ in range(200)]
    batch_times = [post(connection, batch) for _ in range(30)]
    connection.close()

    def client(_: int) -> int:
        own = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        deadline, done = time.perf_counter() + 5, 0
        while time.perf_counter() < deadline:
            post(own, one)
            done += 1
        own.close()
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        requests = sum(pool.map(client, range(4)))
    return {
        "ready_s": server.ready_after_s,
        "p50_ms": statistics.median(latencies) * 1000,
        "batch64_images_per_s": 64 * len(batch_times) / sum(batch_times),
        "concurrent4_requests_per_s": requests / (time.perf_counter() - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    report_preprocessing()  # the picture path's own cost, before the servers
    images = IDXDataset(filepath=str(RAW / "t10k-images-idx3-ubyte.gz")).load().astype(float)
    hyperparameters = {"learning_rate": 0.003, "dropout": 0.3}
    model = build_model("lean_cnn", hyperparameters, total_steps=1)  # timing needs no training

    root = Path(tempfile.mkdtemp(prefix="serving-benchmark-"))
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("benchmark", artifact_location=str(root / "artifacts"))
    with mlflow.start_run(experiment_id=experiment):
        baseline_uri = mlflow.tensorflow.log_model(model, name="keras").model_uri
        ours_uri = log_servable_model(model).model_uri

    env = {"MLFLOW_TRACKING_URI": uri}
    servers = {
        "baseline: mlflow models serve, tensorflow flavor": lambda: ScoringProcess(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", baseline_uri,
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port := free_port())],
            port=port, env=env, ready_timeout_s=300,
        ),
        "ours: mnist_mlops.serving.app, ONNX pyfunc": lambda: ScoringProcess.for_model(
            ours_uri, env=env
        ),
    }  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for repeat in range(args.repeats):
        for name, make in servers.items():
            with make() as server:
                results[name].append(measure(server, images))
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {results[name][-1]}", flush=True)

    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    baseline = medians[next(iter(servers))]
    print(f"\nmedian of {args.repeats} runs; ratio = ours / baseline (latency: baseline / ours)")
    print(f"{'metric':30} {'baseline':>12} {'ours':>12} {'ratio':>8}")
    ours = medians[list(servers)[1]]
    for key in baseline:
        better_low = key in ("ready_s", "p50_ms")
        ratio = baseline[key] / ours[key] if better_low else ours[key] / baseline[key]
        print(f"{key:30} {baseline[key]:12.2f} {ours[key]:12.2f} {ratio:7.1f}x")


if __name__ == "__main__":
    main()
