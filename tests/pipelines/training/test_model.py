"""The recipe's model and optimizer: architectures, precision, schedule, moving average."""

import numpy as np
import pytest
import yaml

from mnist_mlops.pipelines.training import model as model_module
from mnist_mlops.pipelines.training.model import build_model, resolve_precision
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


@pytest.mark.parametrize(
    ("architecture", "convolutions"), [("vgg_cnn", 4), ("lean_cnn", 2), ("original_cnn", 3)]
)
def test_each_architecture_takes_raw_pixels_and_gives_probabilities(
    hyperparameters, architecture, convolutions
):
    model = build_model(architecture, hyperparameters, total_steps=1)
    assert sum(type(layer).__name__ == "Conv2D" for layer in model.layers) == convolutions
    probabilities = model.predict(np.full((3, 28, 28), 255, np.float32), verbose=0)
    assert probabilities.shape == (3, 10)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(3), abs=1e-5)


def test_bfloat16_computes_in_bfloat16_and_its_weights_load_into_a_float32_model(
    hyperparameters,
):
    mixed = build_model("vgg_cnn", hyperparameters, total_steps=1, precision="bfloat16")
    convolutions = [layer for layer in mixed.layers if type(layer).__name__ == "Conv2D"]
    assert {layer.compute_dtype for layer in convolutions} == {"bfloat16"}
    assert {w.dtype for w in mixed.get_weights()} == {np.dtype("float32")}
    assert mixed.layers[-1].compute_dtype == "float32"  # the softmax

    plain = build_model("vgg_cnn", hyperparameters, total_steps=1)
    plain.set_weights(mixed.get_weights())
    assert {layer.compute_dtype for layer in plain.layers} == {"float32"}
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28)).astype(np.float32)
    # The same weights: bfloat16 keeps ~3 significant digits.
    np.testing.assert_allclose(
        mixed.predict(images, verbose=0), plain.predict(images, verbose=0), atol=0.05
    )
    # Building a model in bfloat16 leaves the process's default policy as it was.
    assert build_model("lean_cnn", hyperparameters, 1).layers[0].compute_dtype == "float32"


@pytest.mark.parametrize(
    ("setting", "gpu", "cpu_bfloat16", "expected"),
    [
        ("auto", False, True, "bfloat16"),
        ("auto", False, False, "float32"),
        ("auto", True, True, "float32"),
        ("float32", False, True, "float32"),
        ("bfloat16", False, False, "bfloat16"),
    ],
)
def test_auto_precision_is_bfloat16_only_on_a_cpu_with_bfloat16_instructions(
    monkeypatch, setting, gpu, cpu_bfloat16, expected
):
    monkeypatch.setattr(model_module, "_cpu_has_bfloat16", lambda: cpu_bfloat16)
    assert resolve_precision(setting, gpu) == expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("fpu avx2 amx_bf16 amx_tile", True),
        ("fpu avx2 avx512f avx512_vnni", False),  # AVX-512 without bfloat16
    ],
)
def test_bfloat16_instructions_are_read_from_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert model_module._cpu_has_bfloat16(cpuinfo) is expected
    assert model_module._cpu_has_bfloat16(tmp_path / "missing") is False  # not Linux
