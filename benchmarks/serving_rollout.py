"""Serving with a challenger: CPU per request, and what canary routing and shadowing cost.

Servers in one run, one configuration after another per repeat, all `kedro serve --env gcp
--workers N` on the default architecture (vgg_cnn, untrained: timing needs no training) with a
second version under the alias `canary`:

- ort-default: ONNX Runtime's default session (serving.onnx_threads=0), no challenger traffic:
  the server before this change;
- baseline: one intra-op thread per model and worker (the default), no challenger traffic;
- shadow: serving.rollout.shadow_fraction=1 (every request also scored by the challenger);
- canary: serving.rollout.canary_fraction=1 (every request answered by the challenger);
- canary-0.1: conf/gcp's share (a tenth of the requests answered by the challenger).

    .venv/bin/python benchmarks/serving_rollout.py [--repeats 3] [--workers 2]
        [--only baseline+shadow+canary] [--against ../other-checkout]

Prints, per configuration, the median over repeats of: the server's CPU time (all its
processes) per single-image request at 20 requests/s, single-image p50 (one keep-alive client),
the requests/s of 4 clients, and the share of requests shadowed at 20 requests/s, during the
p50 run and during the 4 clients' run; then ratios. ``--against`` runs every configuration a
second time, interleaved, with the serving code of another checkout of the project (its
``src`` first on ``PYTHONPATH``, e.g. ``git archive main | tar -x -C /tmp/main``): the ratios
are printed for both, and the other's figures are suffixed ``@other``.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import mlflow
import numpy as np

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import IDXDataset
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.serving.pyfunc import log_servable_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import concurrent_rate, default_hyperparameters, kedro_project, post

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "mnist"
TICKS = os.sysconf("SC_CLK_TCK")
OTHER = "@other"  # the suffix of the other checkout's configurations (--against)
SCORED = 'mnist_serving_requests_total{endpoint="/invocations"'  # a prefix: every status
CONFIGURATIONS = {
    "ort-default": {"serving.onnx_threads": 0},
    "baseline": {},
    "shadow": {"serving.rollout.shadow_fraction": 1.0},
    "canary": {"serving.rollout.canary_fraction": 1.0},
    "canary-0.1": {"serving.rollout.canary_fraction": 0.1},
}


def registry(root: Path) -> str:
    """mnist-cnn version 1 (production) and 2 (canary), two vgg_cnn of other seeds."""
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("benchmark", artifact_location=str(root / "artifacts"))
    for seed in (1, 2):
        hyperparameters = {**default_hyperparameters(), "seed": seed}
        with mlflow.start_run(experiment_id=experiment):
            model = build_model("vgg_cnn", hyperparameters, total_steps=1)
            log_servable_model(model, registered_model_name="mnist-cnn")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("mnist-cnn", "production", "1")
    client.set_registered_model_alias("mnist-cnn", "canary", "2")
    return uri


def process_tree_cpu_s(root_pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(times.get(pid, 0.0) for pid in tree)


def metric(port: int, name: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def paced(port: int, body: bytes, rate: float, seconds: float) -> int:
    """Single-image requests at ``rate`` per second (fresh connections, as clients spread over
    workers); the number sent."""
    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        post(connection, body)
        connection.close()
        sent += 1
        time.sleep(max(0.0, sent / rate - (time.perf_counter() - started)))
    return sent


def shadowed(port: int, work: Callable[[], object]) -> tuple[object, float]:
    """What ``work`` returns, and the share of its scoring requests the challenger shadowed
    (counted once the shadows queued meanwhile are done)."""
    before = metric(port, "mnist_serving_shadow_images_total"), metric(port, SCORED)
    result = work()
    time.sleep(2)  # the shadows still queued
    after = metric(port, "mnist_serving_shadow_images_total"), metric(port, SCORED)
    return result, (after[0] - before[0]) / max(after[1] - before[1], 1)


def measure(server: ScoringProcess, images: np.ndarray, seconds: float) -> dict[str, float]:
    one = json.dumps({"inputs": images[:1].tolist()}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    for _ in range(50):  # warm-up, and both workers have their challenger
        post(connection, one)
    connection.close()  # idle for longer than the keep-alive timeout during the paced phase
    time.sleep(2)  # the warm-up's shadow work is done
    assert server.process is not None
    shadowed_before = metric(server.port, "mnist_serving_shadow_images_total")
    cpu_before = process_tree_cpu_s(server.process.pid)
    sent = paced(server.port, one, 20, seconds)
    time.sleep(1)  # the last requests' shadows
    cpu = process_tree_cpu_s(server.process.pid) - cpu_before
    shadowed_paced = metric(server.port, "mnist_serving_shadow_images_total") - shadowed_before
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    latencies, share_p50 = shadowed(
        server.port, lambda: [post(connection, one) for _ in range(300)]
    )
    connection.close()
    rate, share_clients4 = shadowed(server.port, lambda: concurrent_rate(server.port, one, 4))
    return {
        "cpu_ms_per_request": 1000 * cpu / sent,
        "shadowed_share": shadowed_paced / sent,
        "p50_ms": statistics.median(latencies) * 1000,
        "p50_shadowed_share": share_p50,
        "clients4_requests_per_s": rate,
        "clients4_shadowed_share": share_clients4,
    }


def server(project: Path, env: dict[str, str], workers: int, params: dict) -> ScoringProcess:
    port = free_port()
    kedro = str(Path(sys.executable).parent / "kedro")
    command = [kedro, "serve", "--env", "gcp", "--port", str(port), "--workers", str(workers)]
    settings = {"serving.rollout.canary_fraction": 0.0, "serving.rollout.shadow_fraction": 0.0}
    settings.update(params)
    command += ["--params", ",".join(f"{key}={value}" for key, value in settings.items())]
    return ScoringProcess(command, port=port, env=env, cwd=project, ready_timeout_s=300)


def report(medians: dict[str, dict[str, float]], repeats: int, workers: int) -> None:
    names = list(medians)
    print(f"\nmedian of {repeats} runs, {os.cpu_count()} cores, workers={workers}")
    print(f"load average at the end: {os.getloadavg()}")
    print(f"{'metric':28}" + "".join(f"{name:>16}" for name in names))
    for key in medians[names[0]]:
        print(f"{key:28}" + "".join(f"{medians[name][key]:16.3f}" for name in names))
    for suffix in ("", OTHER):
        if f"baseline{suffix}" in medians:
            print(f"\n{suffix or 'this checkout'}:")
            ratios(
                {name.removesuffix(suffix): medians[name] for name in names if _of(name, suffix)}
            )


def _of(name: str, suffix: str) -> bool:
    return name.endswith(OTHER) == bool(suffix)


def ratios(medians: dict[str, dict[str, float]]) -> None:
    """The targets, for the configurations measured."""
    base = medians["baseline"]
    print(f"{'CPU per request, 1 thread':34} {base['cpu_ms_per_request']:8.2f} ms (<= 2 ms)")
    if old := medians.get("ort-default"):
        print(f"{'  vs ONNX Runtime default':34} {old['cpu_ms_per_request']:8.2f} ms")
    if shadow := medians.get("shadow"):
        print(f"{'shadow: p50 / baseline':34} {shadow['p50_ms'] / base['p50_ms']:8.2f}x (<= 1.1)")
        rate = shadow["clients4_requests_per_s"] / base["clients4_requests_per_s"]
        print(f"{'shadow: 4 clients req/s / baseline':34} {rate:8.2f}x (>= 0.9)")
        for key in ("shadowed_share", "p50_shadowed_share", "clients4_shadowed_share"):
            print(f"{'shadow: ' + key:34} {shadow[key]:8.1%}")
    for name in ("canary", "canary-0.1"):
        if canary := medians.get(name):
            added = (canary["p50_ms"] - base["p50_ms"]) * 1000
            print(f"{name + ': p50 added':34} {added:8.0f} us (<= 50 us)")


@click.command()
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
@click.option("--seconds", type=float, default=10, show_default=True, help="at 20 requests/s")
@click.option("--only", default="", help="configurations joined by +, e.g. baseline+canary")
@click.option(
    "--against",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="another checkout of the project whose serving code runs every configuration too",
)
def main(repeats: int, workers: int, seconds: float, only: str, against: Path | None) -> None:
    """CPU per request, and the cost of shadow and canary, side by side."""
    images = IDXDataset(filepath=str(RAW / "t10k-images-idx3-ubyte.gz")).load().astype(float)
    root = Path(tempfile.mkdtemp(prefix="serving-rollout-benchmark-"))
    uri = registry(root)
    env = {"GCP_MLFLOW_TRACKING_URI": uri, "MNIST_SERVING_TOKEN": ""}
    env["MNIST_REQUEST_LOG"] = str(root / "requests.jsonl")
    project = kedro_project(root)
    chosen = only.split("+") if only else list(CONFIGURATIONS)
    runs = [(name, env) for name in chosen]
    if against is not None:
        other = {**env, "PYTHONPATH": str(against.resolve() / "src")}
        runs = [run for name in chosen for run in ((name, env), (name + OTHER, other))]
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in runs}
    for repeat in range(repeats):
        for name, run_env in runs:
            params = CONFIGURATIONS[name.removesuffix(OTHER)]
            with server(project, run_env, workers, params) as running:
                results[name].append(measure(running, images, seconds))
            print(f"repeat {repeat + 1}/{repeats} {name}: {results[name][-1]}", flush=True)
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    report(medians, repeats, workers)


if __name__ == "__main__":
    main()
