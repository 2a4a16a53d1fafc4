"""The rollout's evidence and decision, on request-log lines as the scoring server writes them;
its first node against a registry that is down."""

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from kedro.validation import ParameterValidationError

from mnist_mlops.pipelines.rollout.evidence import collect_evidence, decide, wilson
from mnist_mlops.pipelines.rollout.nodes import read_state
from mnist_mlops.pipelines.rollout.parameters import RolloutParameters
from mnist_mlops.serving.process import free_port
from mnist_mlops.workspaces import Workspace, WorkspaceError
from tests.conftest import PROJECT_ROOT

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture
def params() -> RolloutParameters:
    with open(PROJECT_ROOT / "conf" / "base" / "parameters_rollout.yml") as f:
        values = yaml.safe_load(f)["rollout"]
    return RolloutParameters.model_validate({**values, "min_requests": 100})


def line(version: str, digit: int, label: int | None = None, **extra) -> dict:
    """One single-image request: answered by ``version``; ``shadow=(digit, ms)`` shadows it
    with version 2."""
    shadow = extra.pop("shadow", None)
    record = {
        "time": extra.pop("time", NOW).isoformat(),
        "status": 200,
        "latency_ms": 1.0,
        "scoring_ms": extra.pop("ms", 0.5),
        "model_version": version,
        "rows": [{"digit": digit, "confidence": extra.pop("confidence", 0.99), "label": label}],
        **extra,
    }
    if shadow is not None:
        record["rows"][0].update(shadow_digit=shadow[0], shadow_confidence=0.98)
        record["shadow"] = {"model_version": "2", "latency_ms": shadow[1]}
    return record


def test_a_good_challenger_is_promoted_after_min_requests_and_waits_before(params):
    lines = [line("1", i % 10, i % 10, shadow=(i % 10, 0.6)) for i in range(80)]
    lines += [line("2", i % 10, i % 10) for i in range(20)]
    evidence = collect_evidence(lines[:60], "1", "2", None)
    assert decide(evidence, params).action == "wait"
    assert decide(evidence, params).missing_requests == 40
    evidence = collect_evidence(lines, "1", "2", None)
    assert evidence.shadow_agreement == 1.0 and evidence.challenger_requests == 100
    assert decide(evidence, params).action == "promote"


def test_canary_answers_alone_do_not_promote_until_its_readings_are_judged(params):
    """A saturated server shadows little: answers show errors, speed and confidence, not
    whether the digits are right. Shadowed pairs or labelled answers must say so first."""
    unlabelled = [line("2", i % 10) for i in range(100)]
    decision = decide(collect_evidence(unlabelled, "1", "2", None), params)
    assert decision.action == "wait" and decision.missing_requests == 0
    assert decision.reasons == [
        "what it reads is not judged yet: 0 shadowed images (at least 30) and 0 labelled "
        "answers (at least 50)"
    ]
    labelled = [line("1", i % 10, i % 10) for i in range(50)]
    labelled += [line("2", i % 10, i % 10) for i in range(100)]
    assert decide(collect_evidence(labelled, "1", "2", None), params).action == "promote"
    shadowed = unlabelled + [line("1", i % 10, shadow=(i % 10, 0.6)) for i in range(30)]
    assert decide(collect_evidence(shadowed, "1", "2", None), params).action == "promote"


def test_shadow_times_taken_beside_production_work_are_not_compared(params):
    """A shadow scored while the worker was busy waited for the interpreter: its time says
    nothing about the version. Its reading still counts."""
    lines = [line("1", i % 10, shadow=(i % 10, 0.6)) for i in range(60)]
    lines += [line("1", i % 10, shadow=(i % 10, 40.0)) for i in range(40)]
    assert "p99 scoring time" in decide(collect_evidence(lines, "1", "2", None), params).reasons[0]
    for record in lines[60:]:
        record["shadow"]["contended"] = True
    evidence = collect_evidence(lines, "1", "2", None)
    assert evidence.shadow_images == 100 and evidence.challenger.p99_scoring_ms == 0.6
    assert decide(evidence, params).action == "promote"


def test_a_disagreeing_challenger_is_rolled_back_before_min_requests(params):
    lines = [line("1", 3, 3, shadow=(5 if i % 3 else 3, 0.6)) for i in range(40)]
    decision = decide(collect_evidence(lines, "1", "2", None), params)
    assert decision.action == "rollback" and decision.missing_requests == 60
    assert any(reason.startswith("shadow agreement 0.350") for reason in decision.reasons)


def test_a_few_disagreements_wait_for_more_evidence(params):
    lines = [line("1", 3, shadow=(5 if i < 2 else 3, 0.6)) for i in range(10)]
    assert decide(collect_evidence(lines, "1", "2", None), params).action == "wait"


def test_a_slow_challenger_is_rolled_back_on_the_latency_ratio(params):
    lines = [line("1", 3, shadow=(3, 25.0)) for _ in range(40)]
    decision = decide(collect_evidence(lines, "1", "2", None), params)
    assert (
        decision.action == "rollback" and "p99 scoring time 25.00 ms, 50.0x" in decision.reasons[0]
    )


def test_canary_failures_count_as_the_challengers_errors(params):
    failure = {"challenger_error": {"model_version": "2", "error": "timed out after 1.0 s"}}
    lines = [line("1", 3, **failure) for _ in range(35)] + [line("2", 3) for _ in range(5)]
    lines.append({"time": NOW.isoformat(), "status": 400, "model_version": "1", "rows": []})
    evidence = collect_evidence(lines, "1", "2", None)
    assert (evidence.challenger.requests, evidence.challenger.errors) == (40, 35)
    assert evidence.production.errors == 0  # a refused request is the client's error
    assert decide(evidence, params).reasons[0].startswith("error rate 0.875")


def test_live_accuracy_needs_enough_labels_and_only_the_window_counts(params):
    old = [line("2", 1, 7, time=NOW - timedelta(hours=1)) for _ in range(100)]
    wrong = [line("2", 1, 7) for _ in range(60)] + [line("1", 7, 7) for _ in range(60)]
    evidence = collect_evidence(old + wrong, "1", "2", NOW - timedelta(minutes=1))
    assert evidence.challenger.labelled == 60 and evidence.challenger.accuracy == 0.0
    assert any("live accuracy 0.000" in r for r in decide(evidence, params).reasons)


def test_the_wilson_interval_brackets_the_proportion():
    low, high = wilson(95, 100)
    assert 0.88 < low < 0.95 < high < 0.98
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("key", "value"), [("min_requests", 0), ("thresholds.max_latency_ratio", 0.5)]
)
def test_thresholds_out_of_range_are_refused(params, key, value):
    values = params.model_dump()
    section, _, name = key.rpartition(".")
    (values[section] if section else values)[name] = value
    with pytest.raises(ParameterValidationError, match=key.replace(".", r"\.")):
        RolloutParameters.model_validate(values)


def test_a_registry_that_is_down_fails_the_rollout_clearly_before_anything_moves(
    params, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = Workspace("production", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(WorkspaceError, match="production"):
        read_state(down, params)
