"""Shared fixtures: real MNIST slices, a real Spark local-cluster, isolated MLflow stores."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml

os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"

import mnist_mlops
from mnist_mlops.datasets import ArrayBundle, ArrayBundleDataset, IDXDataset
from mnist_mlops.pipelines.data_prep.nodes import split_train_validation
from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.spark.session import start_spark
from mnist_mlops.workspaces import Workspace
from tests.mlflow_servers import MlflowServer

PROJECT_ROOT = Path(mnist_mlops.__file__).resolve().parents[2]
# The recipe's extras turned off, for the tests' own short trainings (hyperparameters by hand).
NO_RECIPE_EXTRAS = {
    "warmup_fraction": 0.0,
    "rotation_deg": 0,
    "zoom": 0.0,
    "thicken": 0.0,
    "thin": 0.0,
    "low_resolution": 0.0,
    "blur": 0.0,
    "label_smoothing": 0.0,
    "ema_momentum": 0.0,
    "precision": "float32",  # the same model on every CPU
}
RAW_MNIST = PROJECT_ROOT / "data" / "01_raw" / "mnist"


# Fixtures that start real servers or Spark, or train a model: a test using one is slow.
SLOW_FIXTURES = {
    "spark",
    "decent_model",
    "tiny_model",
    "registry_uri",
    "servers",
    "scoring_server",
    "local_workspaces",
    "cluster",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what uses a slow fixture (others say so with ``@pytest.mark.slow``)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """No test writes to the user's MLflow stores."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow-default.db")
    for name in ("AZURE", "GCP"):
        monkeypatch.delenv(f"{name}_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # mlflow.set_experiment sets it
    yield
    # MLflow's current run and URI are process-wide: one test's leftovers break the next ones.
    leaked = mlflow.active_run()
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None  # set_experiment has no public undo
    assert leaked is None, f"the test left MLflow run {leaked.info.run_name!r} active"


@pytest.fixture(scope="session")
def mnist_raw() -> dict[str, np.ndarray]:
    """The four original MNIST arrays, read through the project's IDX dataset."""
    return {
        f"{split}_{kind}": IDXDataset(
            filepath=str(RAW_MNIST / f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz")
        ).load()
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for kind in ("images", "labels")
    }


@pytest.fixture(scope="session")
def small_model_input(tmp_path_factory, mnist_raw) -> ArrayBundle:
    """A few hundred real MNIST images, saved and loaded as the pipeline does."""
    arrays = split_train_validation(
        {
            **mnist_raw,
            "test_images": mnist_raw["test_images"][:1000],
            "test_labels": mnist_raw["test_labels"][:1000],
        },
        DataPrepParameters(validation_images=300, max_train_images=640, seed=7),
    )
    dataset = ArrayBundleDataset(filepath=str(tmp_path_factory.mktemp("input") / "mnist.npz"))
    dataset.save(arrays)
    return dataset.load()


@pytest.fixture
def quick_training() -> Callable[..., TrainingParameters]:
    """``params:training`` for a one-epoch run on a few hundred images, with ``changes``."""

    def training(**changes: Any) -> TrainingParameters:
        with open(PROJECT_ROOT / "conf" / "base" / "parameters_training.yml") as f:
            values = yaml.safe_load(f)["training"]
        values["hyperparameters"].update(epochs=1, batch_size=64, learning_rate=0.003)
        return TrainingParameters.model_validate({**values, **changes})

    return training


@pytest.fixture(scope="session")
def spark():
    """A real Spark ``local-cluster``: a master and two single-core executor JVMs."""
    from pyspark.sql import SparkSession

    with open(PROJECT_ROOT / "conf" / "base" / "spark.yml") as f:
        settings = yaml.safe_load(f)
    settings.update({"spark.master": "local-cluster[2,1,1024]", "spark.app.name": "mnist-tests"})
    for attempt in range(2):  # the local-cluster occasionally fails to start: retry once
        try:
            session = start_spark(settings)
            session.sparkContext.parallelize(range(2), 2).count()  # executors are up
            break
        except Exception:
            if attempt:
                raise
            SparkSession.getActiveSession() and SparkSession.getActiveSession().stop()
            time.sleep(2)
    yield session
    app = session.sparkContext.applicationId
    session.stop()
    # local-cluster executors work in $SPARK_HOME/work/<app>, inside the venv: clean it up.
    import pyspark

    spark_home = os.environ.get("SPARK_HOME") or Path(pyspark.__file__).parent
    shutil.rmtree(Path(spark_home) / "work" / app, ignore_errors=True)


@pytest.fixture(scope="session")
def decent_model(mnist_raw, tmp_path_factory):
    """The default network trained briefly on 20,000 MNIST images (about 99% accurate)."""
    from mnist_mlops.pipelines.training.fit import fit_model
    from mnist_mlops.pipelines.training.model import build_model

    arrays = split_train_validation(
        mnist_raw, DataPrepParameters(validation_images=1000, max_train_images=20000, seed=5)
    )
    dataset = ArrayBundleDataset(filepath=str(tmp_path_factory.mktemp("decent") / "mnist.npz"))
    dataset.save(arrays)
    hyperparameters = {"epochs": 3, "batch_size": 128, "learning_rate": 0.003}
    hyperparameters.update(dropout=0.3, shift_px=2, seed=5, **NO_RECIPE_EXTRAS)
    model = build_model("vgg_cnn", hyperparameters, total_steps=1)
    model.set_weights(fit_model(dataset.load(), hyperparameters, "vgg_cnn").weights)
    return model


@pytest.fixture(scope="session")
def registry_uri(tmp_path_factory, decent_model):
    """A local registry holding mnist-cnn version 1 with the alias production."""
    from mnist_mlops.serving.pyfunc import log_servable_model

    root = tmp_path_factory.mktemp("serving-registry")
    uri = f"sqlite:///{root}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("serving", artifact_location=str(root / "artifacts"))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment):
            log_servable_model(decent_model, registered_model_name="mnist-cnn")
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias("mnist-cnn", "production", "1")
    return uri


PHOTOS = sorted((PROJECT_ROOT / "data" / "01_raw" / "photos" / "images").glob("[0-9]_*"))
REAL_PICTURES = PROJECT_ROOT / "data" / "01_raw" / "photos" / "labels.csv"  # the tuning set
REPORT_PICTURES = PROJECT_ROOT / "data" / "01_raw" / "report_pictures" / "labels.csv"


# Two real basic-auth MLflow servers standing in for the sandbox and production workspaces.
@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspaces")
    sandbox = MlflowServer(root / "sandbox", password="sandbox-Pa55word-1")
    production = MlflowServer(root / "production", password="production-Pa55word-2")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(MlflowServer.start, [sandbox, production]))
    yield {"sandbox": sandbox, "production": production}
    sandbox.stop()
    production.stop()


def workspace(server: MlflowServer, name: str, **changes) -> Workspace:
    credentials = {**server.credentials, **changes.pop("credentials", {})}
    return Workspace(name=name, tracking_uri=server.uri, credentials=credentials, **changes)
