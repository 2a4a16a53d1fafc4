"""Local workspaces benchmark: `kedro workspaces up` the first time (PostgreSQL initdb, two MLflow
schema migrations) and after a `down`, and a push of one model between the two real-store
workspaces (Azure Blob via Azurite -> GCS via fake-gcs-server), against the issue's targets.

    .venv/bin/python benchmarks/workspaces.py [--repeats 3]

State goes to a temporary folder, purged at the end. Prints medians and the ratio to each target
(below 1 meets it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import mlflow

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.pipelines.registration.nodes import push_to_production, register_in_sandbox
from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving.pyfunc import log_servable_model
from mnist_mlops.workspaces import Workspace, local

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


def sandbox_version(sandbox: Workspace, model) -> dict:
    """A new version of the model in the sandbox registry."""
    mlflow.set_tracking_uri(sandbox.tracking_uri)
    with sandbox.session():
        mlflow.set_experiment("benchmark")
        with mlflow.start_run() as run:
            info = log_servable_model(model)
    mlflow.set_tracking_uri(None)
    candidate = {"model_uri": info.model_uri, "model_id": info.model_id, "run_id": run.info.run_id}
    candidate.update(strategy="single_node", strategy_run_id=None)
    return register_in_sandbox(
        candidate, {"test_accuracy": 0.5}, {"sha256": {}}, sandbox, REGISTRATION
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["MNIST_WORKSPACES_DIR"] = tempfile.mkdtemp(prefix="workspaces-benchmark-")
    results: dict[str, list[float]] = {name: [] for name in TARGETS_S}
    try:
        results["up, first time"].append(local.up())
        for _ in range(args.repeats):
            local.down()
            results["up, later"].append(local.up())
        stores = local.load_workspaces()
        sandbox, production = workspace(stores["sandbox"]), workspace(stores["production"])
        hyperparameters = {"learning_rate": 0.003, "dropout": 0.3, "shift_px": 0, "seed": 1}
        model = build_model("lean_cnn", hyperparameters, 1)
        for _ in range(args.repeats):
            version = sandbox_version(sandbox, model)
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
