"""A whole ``kedro run`` through a KedroSession on the embedded defaults, with tiny parameters.

No workspace variable is set: the two local stores land in a scratch directory.
"""

import json

import mlflow
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT, RAW_MNIST


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A scratch project directory: raw data linked in, every output and store written here."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    monkeypatch.chdir(tmp_path)  # the embedded defaults are relative: mlruns/ lands here
    for variable in ("AZURE_MLFLOW_ARTIFACT_LOCATION", "GCP_MLFLOW_ARTIFACT_LOCATION"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def test_kedro_run_trains_compares_and_tracks_every_strategy(project_dir, spark):
    bootstrap_project(PROJECT_ROOT)
    runtime_params = {
        "data_prep": {"max_train_images": 640, "validation_images": 300},
        "training": {
            "strategies": "single_node+local+distributed+custom",
            "architectures": "lean_cnn+original_cnn",  # custom trains both
            "hyperparameters": {"epochs": 1, "batch_size": 64, "learning_rate": 0.003},
        },
        "registration": {"min_test_accuracy": 0.3},
        "deployment": {"min_test_accuracy": 0.3, "min_photo_accuracy": 0.0, "infra_requests": 1},
    }
    with KedroSession.create(
        project_path=project_dir,
        conf_source=str(PROJECT_ROOT / "conf"),
        runtime_params=runtime_params,
    ) as session:
        session.run()

    comparison = pd.read_csv(project_dir / "data/08_reporting/strategy_comparison.csv")
    rows = comparison[["strategy", "architecture"]].itertuples(index=False, name=None)
    assert sorted(rows) == [
        ("custom", "lean_cnn"),
        ("custom", "original_cnn"),
        ("distributed", "lean_cnn"),
        ("local", "lean_cnn"),
        ("single_node", "lean_cnn"),
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
    assert {f"{strategy}/lean_cnn" for strategy in strategies} <= by_name.keys()
    assert "custom/original_cnn" in by_name
    parent = next(run for run in runs if run.info.run_name == "__default__")
    client = mlflow.MlflowClient()
    for strategy in ("single_node", "distributed"):
        run = by_name[f"{strategy}/lean_cnn"]
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
    assert report["production"] == "1" and report["latency_p50_ms"] > 0
    # The model card beside the version in both stores; deploy's section in production's.
    assert "sandbox version 1 -> production version 1" in sandbox_version.description
    assert pushed.description.count("## Deployment validation") == 1
    card = {a.path for a in production.list_artifacts(pushed.run_id, "model_card")}
    assert {"model_card/model_card.html", "model_card/confusion_matrix.png"} <= card

    # Batch scoring with the model just promoted: `kedro run --pipeline batch_predict --env gcp`.
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
