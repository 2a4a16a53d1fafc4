"""The end-of-run summary: only the parts a run had, within 100 columns.

The whole hook (printed, written, logged to MLflow) runs in ``tests/test_run.py``.
"""

import pandas as pd

from mnist_mlops.pipelines.deploy.nodes import DeploymentError
from mnist_mlops.registry.records import (
    DeploymentReport,
    DeployValidation,
    GateEvaluation,
    InfraReport,
    PushedVersion,
    SandboxVersion,
)
from mnist_mlops.reporting.run_summary import BatchScores, render, report_files

REGISTRATION = {"min_test_accuracy": 0.99, "max_regression": 0.002}
REPORTS = {"strategy comparison chart": "data/08_reporting/strategy_comparison.png"}


def _comparison() -> pd.DataFrame:
    rows = [
        ("single_node", "lean_cnn", 1, 0.9937, 4026.0, 1.0, 84.2),
        ("custom", "original_cnn", 2, 0.9938, 1031.5, 0.256, 391.0),
    ]
    columns = ["strategy", "architecture", "workers", "test_accuracy", "images_per_s"]
    columns += ["speedup_vs_single_node", "wall_time_s"]
    return pd.DataFrame(rows, columns=columns)


def _whole_flow() -> dict:
    return {
        "strategy_comparison": _comparison(),
        "champion": {
            "strategy": "custom",
            "architecture": "original_cnn",
            "metrics": {"validation_accuracy": 0.9934},
        },
        "gate_evaluation": GateEvaluation(
            test_accuracy=0.9938,
            per_class={},
            production_version=3,  # an int, as MLflow's SQL store hands it back
            production_test_accuracy=0.9921,
            photo_images=272,
            photo_accuracy=0.98,
            photo_accuracy_by_category={},
            confusion_matrix=[],
            misread=[],
        ),
        "sandbox_model_version": SandboxVersion(
            name="mnist-cnn", version="7", run_id="r", tags={}, already_registered=False
        ),
        "production_model_version": PushedVersion(
            name="mnist-cnn",
            version="4",
            lineage="sqlite:///mlruns/sandbox.db#mnist-cnn/7",
            already_pushed=False,
        ),
        "deployment_report": DeploymentReport(
            name="mnist-cnn",
            action="deploy",
            production="4",
            previous_production="3",
            validation=DeployValidation(
                test_accuracy=0.9938, photo_accuracy=1.0, photo_accuracy_by_category={}
            ),
            infra=InfraReport(
                ready_after_s=3.0, requests=15, latency_p50_ms=2.1, latency_max_ms=9.0
            ),
        ),
    }


def _words(text: str) -> str:
    """The text with each run of whitespace as one space: wrapping does not matter."""
    return " ".join(text.split())


def test_a_whole_run_reads_from_table_to_next_command():
    text = render("Run summary: __default__", _whole_flow(), REGISTRATION, REPORTS)
    assert max(map(len, text.splitlines())) <= 100
    lines, text = text, _words(text)

    assert "| single_node/lean_cnn | 1 | 99.37% | 4,026 | 1.00x | 1 min 24 s |" in text
    assert "| custom/original_cnn | 2 | 99.38% | 1,032 | 0.26x | 6 min 31 s |" in text
    assert "Champion: custom/original_cnn, the best validation accuracy (99.34%" in text
    assert "at least 99.00% (registration.min_test_accuracy)" in text
    assert "within 0.002 of production version 3 (99.21%)" in text
    assert "Registered mnist-cnn version 7 in the sandbox" in text
    assert "production registry as mnist-cnn version 4" in text
    assert "mnist-cnn version 4 is production (previous-production: version 3)" in text
    assert "`data/08_reporting/strategy_comparison.png`" in text
    assert "`kedro serve --env gcp`" in text and "deployment.rollback=true" in text
    assert "\n- roll back: `kedro run --pipeline deploy" in lines


def test_a_rerun_on_the_same_model_says_which_versions_it_already_is():
    outputs = _whole_flow()
    for name, flag in (
        ("sandbox_model_version", "already_registered"),
        ("production_model_version", "already_pushed"),
    ):
        outputs[name] = outputs[name].model_copy(update={flag: True})
    text = _words(render("Run summary: registration", outputs, REGISTRATION, {}))

    assert "Already registered (same fingerprint), nothing added: mnist-cnn version 7" in text
    assert "Already in the production registry as mnist-cnn version 4" in text
    assert "Registered mnist-cnn" not in text and "Pushed to" not in text


def test_only_the_parts_the_run_had():
    outputs = _whole_flow()
    sandbox_only = {k: outputs[k] for k in ("strategy_comparison", "champion")}
    sandbox_only["production_model_version"] = outputs["production_model_version"]
    text = render("Run summary: __default__ (env azure)", sandbox_only, REGISTRATION, {})

    assert "## Training" in text and "## Registration" in text
    assert "Gate" not in text and "## Deployment" not in text and "## Reports" not in text
    assert "`kedro run --pipeline deploy --env gcp`" in text  # what follows a push
    assert "kedro serve" not in text and "rollback" not in text


def test_a_skipped_deploy_says_why():
    report = DeploymentReport(
        name="mnist-cnn", action="skip", reason="deployment.enabled is false in this environment"
    )
    text = render("Run summary: deploy", {"deployment_report": report}, REGISTRATION, {})

    assert "Nothing deployed: deployment.enabled is false" in text


def test_a_deploy_with_nothing_new_says_what_is_in_production():
    reason = "mnist-cnn version 3 is already in production: nothing to deploy"
    report = DeploymentReport(name="mnist-cnn", action="nothing", production="3", reason=reason)
    text = _words(render("Run summary: deploy", {"deployment_report": report}, REGISTRATION, {}))

    assert f"Nothing deployed: {reason}." in text
    assert "roll back" not in text


def test_a_rejection_says_why_and_its_exit_code_in_a_few_lines():
    server_log = "\n".join(f"server log line {n}" for n in range(200))
    error = DeploymentError(f"mnist-cnn version 4 rejected: infra-validation failed\n{server_log}")
    text = render("Run summary: deploy", {}, REGISTRATION, {}, error=error)
    stopped = text.split("## Stopped", 1)[1].splitlines()

    assert "mnist-cnn version 4 rejected: infra-validation failed" in stopped
    assert "Exit code 3." in stopped
    assert len(stopped) <= 14  # and the one line kedro run ends with


def test_a_run_that_produced_nothing_to_summarise_has_no_summary():
    assert render("Run summary: data_prep", {}, REGISTRATION, {}) == ""


def test_monitoring_ends_with_its_verdict_in_one_paragraph():
    report = {
        "retrain": True,
        "alarms": ["intensity_drift", "mean_confidence"],
        "enough_evidence": True,
        "model_versions": ["4"],
        "metrics": {
            "images": 600.0,
            "intensity_drift": 1.0,
            "ink_drift": 1.0,
            "class_mix_drift": 0.43,
            "mean_confidence": 0.65,
            "feedback_accuracy": 0.408,
        },
    }
    text = render("Run summary: monitor", {"monitoring_report": report}, REGISTRATION, {})
    paragraph = _words(text.split("## Monitoring\n\n")[1].split("\n\n")[0])

    assert paragraph.startswith("Retraining is due: intensity_drift, mean_confidence crossed")
    assert "600 recent images of version(s) 4" in paragraph
    assert "feedback accuracy 40.80%" in paragraph
    assert "`kedro run --env azure`" in text
    assert "## Training" not in text


def test_batch_scoring_ends_with_its_result_in_one_paragraph():
    scores = BatchScores(
        images=10_000, versions=["4"], mean_confidence=0.987, unsure=12, digits={0: 980, 1: 1135}
    )
    text = render("Run summary: batch_predict", {"batch_summary": scores}, REGISTRATION, {})

    assert (
        "Scored 10,000 images with version 4: mean confidence 0.987, 12 below 0.5. "
        "Digits: 0: 10%, 1: 11%." in _words(text)
    )


def test_a_rejected_candidate_still_shows_what_was_trained_and_why_it_stopped():
    outputs = {k: _whole_flow()[k] for k in ("strategy_comparison", "champion")}
    error = RuntimeError("Candidate rejected, nothing registered: test accuracy 0.9812 is below")
    text = render("Run summary: __default__", outputs, REGISTRATION, {}, error=error)

    assert "## Training" in text and "| custom/original_cnn | 2 |" in text
    assert "## Stopped\n\nRuntimeError: Candidate rejected, nothing registered" in text
    assert "kedro serve" not in text and "`kedro mlflow ui`" in text


def _tuning_summary() -> dict:
    return {
        "study": "mnist-recipe",
        "storage": "postgresql database optuna at 127.0.0.1:5432",
        "this_run": {"trials": 12, "complete": 7, "pruned": 4, "failed": 1},
        "study_trials": {"trials": 20, "complete": 13, "pruned": 6, "failed": 1},
        "best": {
            "number": 9,
            "val_accuracy": 0.99612,
            "params": {"architecture": "vgg_cnn", "learning_rate": 0.0041234, "epochs": 6},
        },
        "importances": {"learning_rate": 0.52, "epochs": 0.21, "dropout": 0.1, "zoom": 0.05},
    }


def test_a_study_says_its_trials_its_best_and_what_comes_next():
    text = render("Run summary: tune", {"tuning_summary": _tuning_summary()}, REGISTRATION, {})
    flat = " ".join(text.split())
    assert "## Tuning" in text and "## Training" not in text
    assert (
        "Study mnist-recipe (postgresql database optuna at 127.0.0.1:5432): 12 trial(s) this run "
        "(7 complete, 4 pruned, 1 failed), 20 in the study." in flat
    )
    assert "Best: trial 9, validation accuracy 99.61%: architecture vgg_cnn," in flat
    assert "learning_rate 0.004123, epochs 6." in flat
    assert "Most important: learning_rate 0.52, epochs 0.21, dropout 0.10." in flat
    assert "`kedro run --env azure --params training.recipe=tuned`" in flat
    assert all(len(line) <= 100 for line in text.splitlines())


def test_a_tuned_training_run_says_which_trial_it_trained():
    recipe = {"recipe": "tuned", "study": "mnist-recipe", "trial": 9, "val_accuracy": 0.99612}
    text = render("t", {**_whole_flow(), "recipe": recipe}, REGISTRATION, REPORTS)
    assert "Recipe: tuned, trial 9 of study mnist-recipe (validation accuracy 99.61%" in " ".join(
        text.split()
    )
    default = render("t", {**_whole_flow(), "recipe": {"recipe": "default"}}, REGISTRATION, {})
    assert "Recipe:" not in default


def test_reports_are_named_by_the_files_their_catalog_entries_write(tmp_path):
    catalog = {
        "batch_predictions": {"type": "spark.SparkDataset", "filepath": "data/07/p.parquet"},
        "gate_evaluation": {
            "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
            "dataset": {"type": "json.JSONDataset", "filepath": str(tmp_path / "data/gate.json")},
        },
        "monitoring_chart": {"type": "x", "dataset": {"filepath": "abfs://reports/chart.png"}},
        "deployment_report": {"type": "kedro_mlflow.io.artifacts.MlflowMetricDataset"},
        "not_a_report": {"filepath": "data/other.csv"},
    }

    assert report_files(catalog, tmp_path) == {
        "batch_predictions": "data/07/p.parquet",
        "gate_evaluation": "data/gate.json",  # as typed in the project folder
        "monitoring_chart": "abfs://reports/chart.png",
    }
