"""Our scoring server under attack: slow clients, a connection storm, sustained load.

    .venv/bin/python benchmarks/serving_attack.py [--workers 2] [--seconds 60]

Against a real `python -m mnist_mlops.serving.server` (default limits, a token) serving an
untrained model (timing needs no training), it measures:

1. with 200 slow-header clients and 50 stalled bodies open (each reconnecting when the server
   drops it), normal single-image requests: p50 and errors (target p50 < 5 ms, 0 errors);
2. 64 clients connecting at once: the slowest connect and first answer (target: all accepted
   within 100 ms);
3. 16 keep-alive clients for ``--seconds``: errors, p99, and the total RSS of the server's
   processes at the 10th and the last second (target: 0 errors, p99 <= 50 ms, RSS within 10%).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import mlflow
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.process import ScoringProcess
from mnist_mlops.serving.pyfunc import log_servable_model

TOKEN = "attack-benchmark-token"
ONE = json.dumps({"inputs": [[[0] * 28] * 28]}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


def registry(root: Path) -> str:
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("attack", artifact_location=str(root / "artifacts"))
    with open(Path(__file__).resolve().parents[1] / "conf/base/parameters_training.yml") as f:
        hyperparameters = yaml.safe_load(f)["training"]["hyperparameters"]
    model = build_model("lean_cnn", hyperparameters, total_steps=1)
    with mlflow.start_run(experiment_id=experiment):
        log_servable_model(model, registered_model_name="mnist-cnn")
    mlflow.MlflowClient().set_registered_model_alias("mnist-cnn", "production", "1")
    return uri


def rss_mb(group: int) -> float:
    """Resident memory of every process in a process group (the server and its workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
    return total / 1024


def score(connection: http.client.HTTPConnection) -> float:
    started = time.perf_counter()
    connection.request("POST", "/invocations", ONE, HEADERS)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"answered {response.status}")
    return time.perf_counter() - started


def attacker(port: int, stop: threading.Event, stalled_body: bool) -> None:
    """Holds a connection open sending almost nothing; reconnects when dropped."""
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                if stalled_body:
                    sock.sendall(f"{head}Content-Length: 1000\r\n\r\n0123456789".encode())
                else:
                    sock.sendall(head.encode())
                while not stop.is_set():
                    time.sleep(1)
                    sock.sendall(b"" if stalled_body else b"X-a: b\r\n")
        except OSError:
            time.sleep(0.1)


def under_slow_clients(port: int) -> dict[str, float]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=attacker, args=(port, stop, i >= 200), daemon=True)
        for i in range(250)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)  # all connected
    latencies, errors = [], 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(300):
        try:
            latencies.append(score(connection))
        except (OSError, RuntimeError, http.client.HTTPException):
            errors += 1
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    stop.set()
    return {"slow_clients_p50_ms": statistics.median(latencies) * 1000, "slow_errors": errors}


def connection_storm(port: int, clients: int = 64) -> dict[str, float]:
    barrier = threading.Barrier(clients)

    def client(_: int) -> tuple[float, float]:
        barrier.wait()
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.connect()
        connected = time.perf_counter() - started
        score(connection)
        connection.close()
        return connected, time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    return {
        "storm_max_connect_ms": max(r[0] for r in results) * 1000,
        "storm_max_answer_ms": max(r[1] for r in results) * 1000,
    }


def sustained(port: int, group: int, seconds: float, clients: int = 16) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds
    rss: dict[str, float] = {}

    def client(_: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < stop:
            try:
                latencies.append(score(connection))
            except (OSError, RuntimeError, http.client.HTTPException):
                errors[0] += 1
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def sample() -> None:
        time.sleep(10)
        rss["rss_10s_mb"] = rss_mb(group)
        time.sleep(max(0.0, stop - time.perf_counter() - 1))
        rss["rss_end_mb"] = rss_mb(group)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    sampler.join()
    ordered = sorted(latencies)
    return {
        "sustained_requests_per_s": len(latencies) / seconds,
        "sustained_p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "sustained_errors": errors[0],
        **rss,
        "rss_change_pct": 100 * (rss["rss_end_mb"] / rss["rss_10s_mb"] - 1),
    }


@click.command()
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
@click.option("--seconds", type=float, default=60, show_default=True)
def main(workers: int, seconds: float) -> None:
    """Slow clients, a connection storm and sustained load against our server."""
    root = Path(tempfile.mkdtemp(prefix="serving-attack-"))
    env = {"MLFLOW_TRACKING_URI": registry(root), "MNIST_SERVING_TOKEN": TOKEN}
    server = ScoringProcess.for_model("models:/mnist-cnn@production", env=env, token=TOKEN)
    server.command += ["--workers", str(workers), "--request-log", str(root / "requests.jsonl")]
    with server:
        results = {
            **under_slow_clients(server.port),
            **connection_storm(server.port),
            **sustained(server.port, server.process.pid, seconds),
        }
    print(f"\n{os.cpu_count()} cores (shared machine), {workers} workers")
    for key, value in results.items():
        print(f"{key:28} {value:10.2f}")


if __name__ == "__main__":
    main()
