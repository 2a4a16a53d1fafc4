"""The end-of-run summary: what a run produced, in Markdown that reads as plain text.

Built from the outputs the run's nodes returned (names of ``conf/base/catalog.yml``), only the
parts the run had: the strategy table and the champion, the gate's decision, the versions
registered, pushed and promoted, where the reports are and what to type next. Monitoring and
batch scoring get one paragraph each. Lines stay within 100 columns.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_mlops.registry.outcomes import RunStopped
from mnist_mlops.registry.records import (
    DeploymentReport,
    GateEvaluation,
    PushedVersion,
    SandboxVersion,
)


@dataclass(frozen=True)
class BatchScores:
    """What a batch scoring run produced, aggregated where the predictions are (Spark)."""

    images: int
    versions: list[str]
    mean_confidence: float
    unsure: int  # predictions with confidence below 0.5
    digits: dict[int, int]  # predictions per digit


# Outputs a summary reads, as their nodes returned them.
SUMMARISED = (
    "strategy_comparison",
    "champion",
    "gate_evaluation",
    "sandbox_model_version",
    "production_model_version",
    "deployment_report",
    "monitoring_report",
    "tuning_summary",
    "recipe",
    "batch_summary",
)
REGISTERED = ("gate_evaluation", "sandbox_model_version", "production_model_version")
# Files worth opening after the run, by the catalog entry that writes them.
REPORTS = {
    "tuning_history_chart": "tuning history chart",
    "tuning_importance_chart": "parameter importance chart",
    "tuning_trials": "tuning trials table",
    "strategy_comparison_chart": "strategy comparison chart",
    "strategy_comparison": "strategy comparison table",
    "gate_evaluation": "registration gate evaluation",
    "deployment_report": "deployment report",
    "monitoring_chart": "monitoring chart",
    "monitoring_report": "monitoring report",
    "batch_predictions": "batch predictions",
}


def report_files(catalog: dict[str, Any], project: Path) -> dict[str, str]:
    """The file each catalog entry of :data:`REPORTS` writes (its own ``filepath``, or that of the
    dataset an MLflow artifact wraps), as a user in the project folder types it."""
    found = {}
    for name in REPORTS:
        entry = catalog.get(name, {})
        path = entry.get("filepath") or entry.get("dataset", {}).get("filepath")
        if path:
            found[name] = path if "://" in path else os.path.relpath(Path(project, path), project)
    return found


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def strategy_section(comparison: pd.DataFrame, champion: dict[str, Any] | None) -> list[str]:
    """The strategy table (accuracy, throughput, wall time) and the champion with the reason."""
    lines = [
        "## Training",
        "",
        "| strategy | workers | test accuracy | images/s | vs single_node | wall time |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in comparison.itertuples(index=False):
        speedup = row.speedup_vs_single_node
        lines.append(
            f"| {row.strategy}/{row.architecture} | {row.workers} | "
            f"{_percent(row.test_accuracy)} | {row.images_per_s:,.0f} | "
            f"{'' if pd.isna(speedup) else f'{speedup:.2f}x'} | {duration(row.wall_time_s)} |"
        )
    if champion is not None:
        label = f"{champion['strategy']}/{champion['architecture']}"
        validation = champion["metrics"]["validation_accuracy"]
        lines += [
            "",
            f"Champion: {label}, the best validation accuracy ({_percent(validation)}; "
            "the fastest wins a tie).",
        ]
    return [*lines, ""]


def tuning_section(summary: dict[str, Any]) -> list[str]:
    """The study's trials (this run's and in all), its best trial and what mattered most."""
    run, study = summary["this_run"], summary["study_trials"]
    lines = [
        "## Tuning",
        "",
        f"Study {summary['study']} ({summary['storage']}): {run['trials']} trial(s) this run "
        f"({run['complete']} complete, {run['pruned']} pruned, {run['failed']} failed), "
        f"{study['trials']} in the study.",
    ]
    best = summary["best"]
    if best is not None:
        values = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in best["params"].items()
        )
        lines.append(
            f"Best: trial {best['number']}, validation accuracy {_percent(best['val_accuracy'])}: "
            f"{values}."
        )
    if summary["importances"]:
        top = list(summary["importances"].items())[:3]
        lines.append("Most important: " + ", ".join(f"{k} {v:.2f}" for k, v in top) + ".")
    return [*lines, ""]


def recipe_line(recipe: dict[str, Any]) -> list[str]:
    """Which recipe the strategies trained, when it is a tuned one."""
    if recipe["recipe"] != "tuned":
        return []
    return [
        f"Recipe: tuned, trial {recipe['trial']} of study {recipe['study']} (validation "
        f"accuracy {_percent(recipe['val_accuracy'])} in the search).",
        "",
    ]


def registration_section(
    gate: GateEvaluation | None,
    sandbox: SandboxVersion | None,
    production: PushedVersion | None,
    registration: dict[str, Any],
) -> list[str]:
    """The gate's decision, then the versions registered in the sandbox and pushed."""
    lines = ["## Registration", ""]
    if gate is not None:
        decision = (
            f"Gate passed: test accuracy {_percent(gate.test_accuracy)}, at least "
            f"{_percent(registration['min_test_accuracy'])} (registration.min_test_accuracy)"
        )
        if gate.production_test_accuracy is not None:
            decision += (
                f", and within {registration['max_regression']} of production version "
                f"{gate.production_version} ({_percent(gate.production_test_accuracy)})"
            )
        lines.append(decision + ".")
    if sandbox is not None:
        lines.append(
            f"Already registered (same fingerprint), nothing added: {sandbox.name} version "
            f"{sandbox.version} in the sandbox."
            if sandbox.already_registered
            else f"Registered {sandbox.name} version {sandbox.version} in the sandbox."
        )
    if production is not None:
        pushed = "Already in" if production.already_pushed else "Pushed to"
        lines.append(
            f"{pushed} the production registry as {production.name} version "
            f"{production.version} (lineage {production.lineage})."
        )
    return [*lines, ""]


def deployment_section(report: DeploymentReport) -> list[str]:
    """What deploy did: promoted a version, rolled back, or stood aside and why."""
    name = report.name
    if report.action in ("skip", "nothing"):
        text = f"Nothing deployed: {report.reason.rstrip('.')}."
    elif report.action == "rollback":
        text = f"Rolled back: {name} version {report.production} is production again."
    elif report.action == "canary":
        text = (
            f"{name} version {report.canary} is the canary beside production version "
            f"{report.production}: `kedro run --pipeline rollout --env gcp` promotes or rolls "
            "it back on live evidence."
        )
    else:
        previous = report.previous_production
        validation, infra = report.validation, report.infra
        text = f"{name} version {report.production} is production" + (
            f" (previous-production: version {previous})" if previous else ""
        )
        if validation is not None and infra is not None:
            text += (
                f": test accuracy {_percent(validation.test_accuracy)}, photos "
                f"{_percent(validation.photo_accuracy)}, infra-validated in a scoring server "
                f"(p50 {infra.latency_p50_ms} ms over {infra.requests} requests)"
            )
        text += "."
    return ["## Deployment", "", text, ""]


def monitoring_paragraph(report: dict[str, Any]) -> list[str]:
    """One paragraph: the verdict, the evidence and the numbers behind it."""
    metrics = report["metrics"]
    if not report["enough_evidence"]:
        verdict = "Too few recent images to judge (monitoring.min_images): no alarm raised."
    elif report["retrain"]:
        verdict = f"Retraining is due: {', '.join(report['alarms'])} crossed its threshold."
    else:
        verdict = "No drift: the served model holds."
    feedback = metrics.get("feedback_accuracy")
    return [
        "## Monitoring",
        "",
        f"{verdict} {int(metrics['images'])} recent images of version(s) "
        f"{', '.join(map(str, report['model_versions']))}: intensity drift "
        f"{metrics['intensity_drift']:.3f}, ink drift {metrics['ink_drift']:.3f}, class mix "
        f"drift {metrics['class_mix_drift']:.3f}, mean confidence "
        f"{metrics['mean_confidence']:.3f}"
        + (f", feedback accuracy {_percent(feedback)}" if feedback is not None else "")
        + ".",
        "",
    ]


def batch_paragraph(scored: BatchScores) -> list[str]:
    """One paragraph: how many images, with which version, how confident, which digits."""
    total = max(scored.images, 1)
    mix = ", ".join(
        f"{digit}: {count / total:.0%}" for digit, count in sorted(scored.digits.items())
    )
    return [
        "## Batch scoring",
        "",
        f"Scored {scored.images:,} images with version {', '.join(scored.versions)}: mean "
        f"confidence {scored.mean_confidence:.3f}, {scored.unsure:,} below 0.5. Digits: {mix}.",
        "",
    ]


# A decision's reason may carry a server log; the summary keeps its first lines.
STOPPED_LINES = 5


def stopped_section(error: BaseException) -> list[str]:
    """Why the run stopped: a decision (rejected, nothing to roll back to) with its reason and
    exit code, or a crash's one-line error (its traceback follows the summary)."""
    if isinstance(error, RunStopped):
        reason = str(error.format_message()).splitlines()[:STOPPED_LINES]
        return ["## Stopped", "", *reason, "", f"Exit code {error.exit_code}.", ""]
    return ["## Stopped", "", f"{type(error).__name__}: {error}".splitlines()[0], ""]


def next_steps(outputs: dict[str, Any], error: BaseException | None = None) -> list[str]:
    """The commands that follow from what the run did."""
    lines = ["## Next", ""]
    if error is not None:
        return [*lines, "- see what ran: `kedro mlflow ui`"]
    report: DeploymentReport | None = outputs.get("deployment_report")
    if outputs.get("tuning_summary", {}).get("best"):
        lines.append(
            "- train with the best trial: `kedro run --env azure --params training.recipe=tuned`"
        )
    if report and report.action in ("deploy", "rollback"):
        lines.append("- serve it: `kedro serve --env gcp`")
    elif "production_model_version" in outputs:
        lines.append("- deploy it: `kedro run --pipeline deploy --env gcp`")
    lines.append("- compare the runs: `kedro mlflow ui` (`--env gcp`: the production store)")
    monitoring = outputs.get("monitoring_report")
    if monitoring and monitoring["retrain"]:
        lines.append("- retrain: `kedro run --env azure`, then deploy")
    if report and report.action == "deploy":
        lines.append(
            "- roll back: `kedro run --pipeline deploy --env gcp --params deployment.rollback=true`"
        )
    return lines


def render(
    title: str,
    outputs: dict[str, Any],
    registration: dict[str, Any],
    reports: dict[str, str],
    error: BaseException | None = None,
) -> str:
    """The whole summary of one run, only the sections it has (empty when it has none).

    Args:
        title: what ran (pipeline, environment, time).
        outputs: the node outputs named in ``SUMMARISED`` that the run produced.
        registration: ``params:registration``, for the gate's thresholds.
        reports: files the run wrote, by description.
        error: what stopped the run (a rejected candidate, a failed check), if anything did.
    """
    body = _sections(outputs, registration, error)
    if not body:
        return ""
    lines = [f"# {title}", "", *body]
    if reports:
        lines += ["## Reports", ""]
        lines += [f"- {what}: `{path}`" for what, path in reports.items()]
        lines.append("")
    return "\n".join(_wrap(line) for line in lines + next_steps(outputs, error)) + "\n"


def _sections(
    outputs: dict[str, Any], registration: dict[str, Any], error: BaseException | None
) -> list[str]:
    """The lines of every section the run's outputs have, in the order the flow makes them."""
    body: list[str] = []
    if "tuning_summary" in outputs:
        body += tuning_section(outputs["tuning_summary"])
    if "strategy_comparison" in outputs:
        body += recipe_line(outputs.get("recipe", {"recipe": "default"}))
        body += strategy_section(outputs["strategy_comparison"], outputs.get("champion"))
    gate, sandbox, pushed = (outputs.get(name) for name in REGISTERED)
    if gate or sandbox or pushed:
        body += registration_section(gate, sandbox, pushed, registration)
    if "deployment_report" in outputs:
        body += deployment_section(outputs["deployment_report"])
    if "monitoring_report" in outputs:
        body += monitoring_paragraph(outputs["monitoring_report"])
    if "batch_summary" in outputs:
        body += batch_paragraph(outputs["batch_summary"])
    if error is not None:
        body += stopped_section(error)
    return body


def _wrap(line: str, width: int = 100) -> str:
    """Prose and list items wrapped to ``width`` columns; tables and headings as they are."""
    if line.startswith(("|", "#")) or len(line) <= width:
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(
        line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
