"""One whole ``kedro run`` on the embedded defaults, as a user types it, checked end to end.

The run is a subprocess (so the C++ and JVM lines are in its output too), with tiny parameters:
640 images, one epoch, all four strategies (custom trains both architectures), registration in
the local sandbox store, the push to the local production store, deploy with its scoring server;
then batch scoring with the promoted model. No workspace variable is set: the two local stores
land in the scratch project. Several tests read the one run.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

# Lines that may say WARN(ING), each with where it comes from and why it stays.
ALLOWED_WARNINGS = {
    # TensorFlow's shared libraries log "I0000 ... cudart_stub.cc ... Could not find cuda drivers"
    # while they load, before any log configuration exists; absl prefixes it with this notice.
    # Neither TF_CPP_MIN_LOG_LEVEL (even 3) nor anything else in-process reaches it (measured).
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    # Not a warning: Spark says at which level its log starts.
    r'^Setting default log level to "WARN"\.$',
    # The JVM announces the incubator module Spark 4 itself adds to its command line.
    r"^WARNING: Using incubator modules: jdk\.incubator\.vector$",
    # pip's pyspark ships no native Hadoop library; the Java fallback is what every pip user runs.
    r"WARN NativeCodeLoader: Unable to load native-hadoop library for your platform",
}
# Each Spark Python worker that trains prints absl's notice once as TensorFlow loads (the driver
# prints none): distributed's two workers, and custom's two for each of its two architectures.
TRAINING_WORKERS = 2 + 2 * 2
PARAMS = {
    "data_prep.max_train_images": 640,
    "data_prep.validation_images": 300,
    "training.strategies": "single_node+local+distributed+custom",
    "training.architectures": "vgg_cnn+original_cnn",  # custom trains both
    "training.hyperparameters.epochs": 1,
    "training.hyperparameters.batch_size": 64,
    "registration.min_test_accuracy": 0.3,
    "deployment.min_test_accuracy": 0.3,
    "deployment.min_photo_accuracy": 0.0,
    "deployment.infra_requests": 1,
}
# What a user on the embedded defaults has: no workspace or MLflow variable.
UNSET = re.compile(r"^(AZURE_|GCP_|MLFLOW_|SPARK_MASTER$)")


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory) -> Path:
    """A project folder whose outputs and MLflow stores land in a scratch directory."""
    project = tmp_path_factory.mktemp("default-run")
    (project / "data").mkdir()
    (project / "data" / "01_raw").symlink_to(PROJECT_ROOT / "data" / "01_raw")
    for shared in ("conf", "pyproject.toml"):
        (project / shared).symlink_to(PROJECT_ROOT / shared)
    (project / "src").mkdir()  # Kedro wants the folder; the package is installed
    return project


@pytest.fixture(scope="module")
def run_output(project_dir) -> str:
    """``kedro run --params ...`` in the scratch project; its whole output (stdout and stderr)."""
    env = {key: value for key, value in os.environ.items() if not UNSET.match(key)}
    env["COLUMNS"] = "400"  # one line per log record: no wrapped messages
    command = [str(Path(sys.executable).parent / "kedro"), "run", "--params"]
    command.append(",".join(f"{key}={value}" for key, value in PARAMS.items()))
    run = subprocess.run(
        command,
        cwd=project_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-5000:]
    return run.stdout


def test_a_default_run_is_quiet_and_ends_on_its_summary(project_dir, run_output):
    assert "ERROR" not in run_output and "E0000" not in run_output
    warnings = [line for line in run_output.splitlines() if re.search(r"\bWARN(ING)?\b", line)]
    unexpected = [w for w in warnings if not any(re.search(a, w) for a in ALLOWED_WARNINGS)]
    assert not unexpected, "\n".join(unexpected)
    assert run_output.count("before absl::InitializeLog() is called") <= TRAINING_WORKERS
    assert not re.search(r"\d+/\d+ \[=+", run_output)  # no Keras progress bar

    summary = (project_dir / "data/08_reporting/run_summary.md").read_text()
    assert summary.startswith("# Run summary: __default__ (env local)")
    assert run_output.rstrip().endswith(summary.rstrip())  # printed last, after Kedro's lines
    for heading in ("## Training", "## Registration", "## Deployment", "## Reports", "## Next"):
        assert heading in summary
    assert "| local/vgg_cnn | 1 |" in summary and "| custom/vgg_cnn | 2 |" in summary
    assert "mnist-cnn version 1 is production" in " ".join(summary.split())
    assert "- strategy comparison chart: `data/08_reporting/strategy_comparison.png`" in summary
    mlflow.set_tracking_uri(f"sqlite:///{project_dir}/mlruns/sandbox.db")
    (parent,) = mlflow.search_runs(
        experiment_names=["mnist-mlops"],
        filter_string="tags.`mlflow.runName` = '__default__'",
        output_format="list",
    )
    logged = mlflow.artifacts.load_text(f"{parent.info.artifact_uri}/run_summary.md")
    assert logged == summary


def test_kedro_run_trains_compares_and_tracks_every_strategy(project_dir, run_output):
    comparison = pd.read_csv(project_dir / "data/08_reporting/strategy_comparison.csv")
    rows = comparison[["strategy", "architecture"]].itertuples(index=False, name=None)
    assert sorted(rows) == [
        ("custom", "original_cnn"),
        ("custom", "vgg_cnn"),
        ("distributed", "vgg_cnn"),
        ("local", "vgg_cnn"),
        ("single_node", "vgg_cnn"),
    ]
    assert (comparison["test_accuracy"] > 0.4).all()
    assert comparison.set_index("strategy").loc["single_node", "speedup_vs_single_node"] == 1
    assert (project_dir / "data/08_reporting/strategy_comparison.png").stat().st_size > 10_000
    champion = json.loads((project_dir / "data/06_models/champion.json").read_text())
    assert champion["strategy"] in set(comparison["strategy"])
    assert (project_dir / "data/06_models/champion.keras").exists()
    report = json.loads((project_dir / "data/08_reporting/data_report.json").read_text())
    assert report["splits"]["train"]["images"] == 640

    mlflow.set_tracking_uri(f"sqlite:///{project_dir}/mlruns/sandbox.db")
    runs = mlflow.search_runs(experiment_names=["mnist-mlops"], output_format="list")
    by_name = {run.info.run_name: run for run in runs}
    strategies = ("single_node", "local", "distributed", "custom")
    assert {f"{strategy}/vgg_cnn" for strategy in strategies} <= by_name.keys()
    assert "custom/original_cnn" in by_name
    parent = next(run for run in runs if run.info.run_name == "__default__")
    client = mlflow.MlflowClient()
    for strategy in ("single_node", "distributed"):
        run = by_name[f"{strategy}/vgg_cnn"]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.params["strategy"] == strategy
        assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 1
        assert run.data.metrics["images_per_s"] > 0
        assert mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model") is not None
    champion_run = by_name[f"{champion['strategy']}/{champion['architecture']}"]
    assert champion["run_id"] == champion_run.info.run_id
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"strategy_comparison.csv", "strategy_comparison.png", "champion.json"} <= artifacts

    # Registration: the embedded default's two local stores stand for the two workspaces.
    sandbox_version = client.get_model_version("mnist-cnn", "1")
    assert sandbox_version.tags["mnist.strategy"] == champion["strategy"]
    production = mlflow.MlflowClient(f"sqlite:///{project_dir}/mlruns/production.db")
    pushed = production.get_model_version("mnist-cnn", "1")
    assert pushed.tags["mnist.lineage"].endswith("#mnist-cnn/1")
    assert (project_dir / "mlruns" / "production-artifacts").is_dir()

    # Deploy: validated, staged, infra-validated, promoted.
    aliases = production.get_registered_model("mnist-cnn").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {
        "staging": "1",
        "production": "1",
    }
    report = json.loads((project_dir / "data/08_reporting/deployment_report.json").read_text())
    assert report["production"] == "1" and report["infra"]["latency_p50_ms"] > 0
    # The model card beside the version in both stores; deploy's section in production's.
    assert "sandbox version 1 -> production version 1" in sandbox_version.description
    assert pushed.description.count("## Deployment validation") == 1
    card = {a.path for a in production.list_artifacts(pushed.run_id, "model_card")}
    assert {"model_card/model_card.html", "model_card/confusion_matrix.png"} <= card


def test_batch_predict_scores_with_the_promoted_model(project_dir, run_output, monkeypatch):
    """`kedro run --pipeline batch_predict --env gcp` after the run promoted version 1."""
    monkeypatch.chdir(project_dir)  # the embedded stores are relative to the project
    for variable in ("AZURE_MLFLOW_ARTIFACT_LOCATION", "GCP_MLFLOW_ARTIFACT_LOCATION"):
        monkeypatch.delenv(variable, raising=False)
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(
        project_path=project_dir, conf_source=str(PROJECT_ROOT / "conf"), env="gcp"
    ) as session:
        session.run(pipeline_name="batch_predict")
    predictions = pd.read_parquet(project_dir / "data/07_model_output/batch_predictions.parquet")
    assert sorted(predictions["id"]) == list(range(10_000))
    assert set(predictions["model_version"]) == {"1"}
    assert predictions["probabilities"].map(len).eq(10).all()
    assert predictions["confidence"].between(0, 1).all()
    # It ends on its own paragraph in the run summary (hooks.RunSummaryHooks).
    summary = " ".join((project_dir / "data/08_reporting/run_summary.md").read_text().split())
    assert summary.startswith("# Run summary: batch_predict (env gcp)")
    assert "Scored 10,000 images with version 1: mean confidence" in summary
