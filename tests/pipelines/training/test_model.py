"""The recipe's optimizer: warm-up and cosine schedule, moving average capped to the run."""

import pytest
import yaml

from mnist_mlops.pipelines.training.model import build_model
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def hyperparameters() -> dict:
    with open(PROJECT_ROOT / "conf" / "base" / "parameters_training.yml") as f:
        return yaml.safe_load(f)["training"]["hyperparameters"]


def _schedule(hyperparameters: dict, total_steps: int):
    """The learning-rate schedule the compiled model's optimizer follows."""
    import tensorflow as tf

    optimizer = build_model("lean_cnn", hyperparameters, total_steps).optimizer
    return tf.keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])


def test_learning_rate_warms_up_to_its_peak_then_decays_to_zero(hyperparameters):
    hyperparameters.update(learning_rate=0.01, warmup_fraction=0.1)
    schedule = _schedule(hyperparameters, total_steps=1000)
    rates = [float(schedule(step)) for step in (0, 50, 100, 550, 1000)]
    assert rates[0] == 0 and rates[1] == pytest.approx(0.005)
    assert rates[2] == pytest.approx(0.01) and rates[3] == pytest.approx(0.005)
    assert rates[4] == pytest.approx(0, abs=1e-9)


def test_without_warm_up_the_run_starts_at_the_peak(hyperparameters):
    hyperparameters.update(learning_rate=0.01, warmup_fraction=0)
    assert float(_schedule(hyperparameters, total_steps=1000)(0)) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("configured", "total_steps", "expected"),
    [(0.99, 1070, 0.99), (0.99, 200, 0.95), (0.99, 10, 0.0), (0.0, 1070, 0.0)],
)
def test_moving_average_spans_at_most_the_last_tenth_of_the_run(
    hyperparameters, configured, total_steps, expected
):
    hyperparameters["ema_momentum"] = configured
    optimizer = build_model("lean_cnn", hyperparameters, total_steps).optimizer
    assert optimizer.use_ema is (expected > 0)
    if expected:
        assert optimizer.ema_momentum == pytest.approx(expected)
