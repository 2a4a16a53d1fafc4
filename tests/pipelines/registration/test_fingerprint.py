"""The fingerprint of what a version serves: its ONNX weights and the code logged with them."""

from pathlib import Path

import numpy as np

from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving import preprocessing, pyfunc
from tests.conftest import NO_RECIPE_EXTRAS

HYPERPARAMETERS = {"epochs": 1, "batch_size": 64, "learning_rate": 0.001}
HYPERPARAMETERS.update(dropout=0.0, shift_px=0, seed=1, **NO_RECIPE_EXTRAS)


def _fingerprint(model, folder: Path, sources=None) -> str:
    onnx_path = str(folder / f"{model.name}.onnx")
    pyfunc._export_onnx(model, onnx_path)
    return pyfunc.fingerprint(onnx_path, sources or pyfunc.served_sources())


def test_the_fingerprint_follows_weights_and_served_code_not_names(tmp_path):
    model = build_model("lean_cnn", HYPERPARAMETERS, total_steps=1)
    # The same weights in a model built later: TensorFlow names its variables differently, as
    # in a process that built another model before loading the champion.
    same = build_model("lean_cnn", HYPERPARAMETERS, total_steps=1)
    same.set_weights(model.get_weights())
    nudged_weights = model.get_weights()
    nudged_weights[0] = nudged_weights[0] + np.float32(1e-3)
    nudged = build_model("lean_cnn", HYPERPARAMETERS, total_steps=1)
    nudged.set_weights(nudged_weights)
    assert model.weights[0].name != same.weights[0].name

    fingerprint = _fingerprint(model, tmp_path)
    assert len(fingerprint) == 64
    assert _fingerprint(same, tmp_path) == fingerprint
    assert _fingerprint(nudged, tmp_path) != fingerprint
    sources = pyfunc.served_sources()
    assert set(sources) == {preprocessing.__name__, pyfunc.__name__}
    sources[preprocessing.__name__] += b"\n# an edited preprocessing\n"
    assert _fingerprint(model, tmp_path, sources) != fingerprint
