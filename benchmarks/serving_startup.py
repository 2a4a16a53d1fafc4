"""Start-up benchmark: from `kedro serve --env gcp` to the first 200 on /ping, side by side.

    .venv/bin/python benchmarks/serving_startup.py --baseline ../main [--repeats 5] [--workers 2]

Two checkouts, each with its own ``.venv`` (``make setup``): this one and ``--baseline`` (e.g.
the main branch). Both serve the same registry (an untrained ``vgg_cnn``, the default
architecture: timing needs no training) as ``kedro serve --env gcp --workers N``; their starts
alternate, so a machine that gets busier slows both alike. Prints, per checkout, the median
seconds from the command to the first 200 on /ping, the CPU seconds its processes used until
then (a figure a busy machine changes little), the load average around the runs, and the phases
this checkout logs (``start-up: <phase> <seconds> s``, seconds since the command).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import click
import mlflow
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.serving.pyfunc import log_servable_model

ROOT = Path(__file__).resolve().parents[1]
PHASE = re.compile(r"start-up: (?P<phase>[a-z -]+?) (?P<seconds>[0-9.]+) s")


def registry(root: Path) -> str:
    """A registry holding an untrained vgg_cnn as mnist-cnn@production."""
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("startup", artifact_location=str(root / "artifacts"))
    with open(ROOT / "conf" / "base" / "parameters_training.yml") as f:
        hyperparameters = yaml.safe_load(f)["training"]["hyperparameters"]
    with mlflow.start_run(experiment_id=experiment):
        log_servable_model(
            build_model("vgg_cnn", hyperparameters, total_steps=1),
            registered_model_name="mnist-cnn",
        )
    mlflow.MlflowClient().set_registered_model_alias("mnist-cnn", "production", "1")
    return uri


def kedro_project(checkout: Path, folder: Path) -> Path:
    """A folder ``kedro`` accepts as the project, with a checkout's configuration (its installed
    package is the one in the checkout's own .venv)."""
    folder.mkdir()
    shutil.copy(checkout / "pyproject.toml", folder)
    (folder / "conf").symlink_to(checkout / "conf")
    (folder / "src").mkdir()
    return folder


def start_once(checkout: Path, project: Path, env: dict[str, str], workers: int) -> dict:
    """Seconds to the first 200 on /ping, and the phases the server logged."""
    port = free_port()
    kedro = str(checkout / ".venv" / "bin" / "kedro")
    command = [kedro, "serve", "--env", "gcp", "--port", str(port), "--workers", str(workers)]
    server = ScoringProcess(command, port=port, env=env, cwd=project, ready_timeout_s=300)
    with server:
        cpu_s = group_cpu_s(server.process.pid)  # its own session: the group is the server's
        with urllib.request.urlopen(f"{server.url}/ping", timeout=10) as answer:
            assert answer.status == 200
        time.sleep(0.5)  # the second worker's lines
        log = server.log_tail(lines=200)
    phases = {m["phase"]: float(m["seconds"]) for m in PHASE.finditer(log)}
    return {"ready_s": server.ready_after_s, "cpu_s": cpu_s, "phases": phases}


def group_cpu_s(group: int) -> float:
    """CPU seconds (user + system) of the live processes of a process group."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(group):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@click.command()
@click.option("--baseline", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
def main(baseline: Path | None, repeats: int, workers: int) -> None:
    """This checkout's start-up, and the baseline's when given, alternating."""
    root = Path(tempfile.mkdtemp(prefix="startup-benchmark-"))
    uri = registry(root)
    env = {
        "GCP_MLFLOW_TRACKING_URI": uri,
        "MNIST_SERVING_TOKEN": "",
        "MNIST_REQUEST_LOG": str(root / "requests.jsonl"),
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    checkouts = {"this": ROOT} | ({"baseline": baseline.resolve()} if baseline else {})
    projects = {name: kedro_project(path, root / name) for name, path in checkouts.items()}
    results: dict[str, list[dict]] = {name: [] for name in checkouts}
    loads = [os.getloadavg()[0]]
    for repeat in range(repeats):
        for name, checkout in checkouts.items():
            results[name].append(start_once(checkout, projects[name], env, workers))
            loads.append(os.getloadavg()[0])
            print(f"repeat {repeat + 1}/{repeats} {name}: {results[name][-1]}", flush=True)
    report(results, loads, workers)
    shutil.rmtree(root, ignore_errors=True)


def report(results: dict[str, list[dict]], loads: list[float], workers: int) -> None:
    print(
        f"\n{os.cpu_count()} cores, {workers} workers, load average (1 min) "
        f"{min(loads):.1f}-{max(loads):.1f} during the runs (median {statistics.median(loads):.1f})"
    )
    for name, runs in results.items():
        ready = [run["ready_s"] for run in runs]
        print(
            f"{name:9} kedro serve -> first 200 on /ping: median {statistics.median(ready):.2f} s"
            f" (min {min(ready):.2f}, max {max(ready):.2f}, {len(ready)} runs)"
        )
        cpu = statistics.median(run["cpu_s"] for run in runs)
        print(f"          CPU time of its processes until then: median {cpu:.2f} s")
        for phase in runs[0]["phases"]:
            seconds = statistics.median(run["phases"].get(phase, float("nan")) for run in runs)
            print(f"          {phase:28} {seconds:6.2f} s after the command (median)")
    if "baseline" in results:
        this, base = (statistics.median(r["ready_s"] for r in results[n]) for n in results)
        print(f"this / baseline: {this / base:.2f}x the start-up time")


if __name__ == "__main__":
    main()
