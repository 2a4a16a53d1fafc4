"""Local workspaces benchmark: `kedro workspaces up` the first time (PostgreSQL initdb, two MLflow
schema migrations) and after a `down`, and a push of one model between the two real-store
workspaces (Azure Blob via Azurite -> GCS via fake-gcs-server), against the issue's targets.

    .venv/bin/python benchmarks/workspaces.py [--repeats 3]

State goes to a temporary folder, purged at the end. Prints medians and the ratio to each target
(below 1 meets it).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import click
import mlflow
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.devservices import workspaces as local
from mnist_mlops.pipelines.registration.nodes import (
    log_candidate,
    push_to_production,
    register_in_sandbox,
)
from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.workspaces import Workspace

# The configured hyperparameters: building the model reads the whole recipe.
HYPERPARAMETERS = yaml.safe_load(
    (Path(__file__).parents[1] / "conf" / "base" / "parameters_training.yml").read_text()
)["training"]["hyperparameters"]
TARGETS_S = {"up, first time": 60.0, "up, later": 20.0, "push of one model": 15.0}
REGISTRATION = RegistrationParameters(
    model_name="benchmark-cnn",
    min_test_accuracy=0.0,
    max_regression=1.0,
    production_experiment="pushed-models",
)


def workspace(local_workspace: local.LocalWorkspace) -> Workspace:
    settings = local_workspace.settings
    credentials = {
        "MLFLOW_TRACKING_USERNAME": settings.username,
        "MLFLOW_TRACKING_PASSWORD": settings.password,
    }
    return Workspace(local_workspace.name, local_workspace.uri, credentials=credentials)


def sandbox_version(sandbox: Workspace) -> dict:
    """A new version in the sandbox registry: a freshly initialised model each time, since
    registering the same weights again would add no version (and push nothing)."""
    model = build_model("lean_cnn", HYPERPARAMETERS, total_steps=1)
    mlflow.set_tracking_uri(sandbox.tracking_uri)
    with sandbox.session():
        mlflow.set_experiment("benchmark")
        with mlflow.start_run():
            candidate = log_candidate(model, {"strategy": "single_node", "run_id": None})
    mlflow.set_tracking_uri(None)
    return register_in_sandbox(
        candidate, {"test_accuracy": 0.5}, {"sha256": {}}, sandbox, REGISTRATION
    )


@click.command()
@click.option("--repeats", type=int, default=3, show_default=True)
def main(repeats: int) -> None:
    """Time `kedro workspaces up` (first and later) and a push of one model."""
    os.environ["MNIST_WORKSPACES_DIR"] = tempfile.mkdtemp(prefix="workspaces-benchmark-")
    results: dict[str, list[float]] = {name: [] for name in TARGETS_S}
    try:
        results["up, first time"].append(local.up())
        for _ in range(repeats):
            local.down()
            results["up, later"].append(local.up())
        stores = local.load_workspaces()
        sandbox, production = workspace(stores["sandbox"]), workspace(stores["production"])
        for _ in range(repeats):
            version = sandbox_version(sandbox)
            started = time.perf_counter()
            push_to_production(version, sandbox, production, REGISTRATION)
            results["push of one model"].append(time.perf_counter() - started)
    finally:
        local.down(purge=True)
    print(f"{'measure':<20} {'median s':>9} {'target s':>9} {'ratio':>6}   runs (s)")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        target = TARGETS_S[name]
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{name:<20} {median:>9.1f} {target:>9.0f} {median / target:>6.2f}   {runs}")


if __name__ == "__main__":
    main()
