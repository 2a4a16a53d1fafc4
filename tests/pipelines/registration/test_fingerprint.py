"""The fingerprint of what a version serves: its ONNX weights and the code logged with them."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.serving import preprocessing, pyfunc
from tests.conftest import NO_RECIPE_EXTRAS, PROJECT_ROOT

STAGES = ("decode", "locate", "masks", "polarity", "to_mnist")
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
    stages = {f"{preprocessing.__name__}.{stage}" for stage in STAGES}
    assert set(sources) == {preprocessing.__name__, pyfunc.__name__} | stages
    for stage in stages:  # editing any one stage makes another version
        edited = {**sources, stage: sources[stage] + b"\n# an edited stage\n"}
        assert _fingerprint(model, tmp_path, edited) != fingerprint


def test_monitoring_statistics_are_not_served_code():
    from mnist_mlops.serving import statistics

    assert statistics.__name__ not in pyfunc.served_sources()


# Blocks the project's package, then loads the logged model and reads a picture with it.
WITHOUT_THE_PROJECT = """
import sys
sys.modules["mnist_mlops"] = None  # any import of it now fails
import base64, json, mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
picture = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
answers = model.predict(pd.DataFrame({"image": [picture, picture]}))
print(json.dumps([int(d) for d in answers["digit"]]))
"""


@pytest.mark.slow
def test_a_logged_model_predicts_where_the_project_cannot_be_imported(tmp_path):
    """Every stage of the preprocessing travels in the model, pickled by value."""
    model = build_model("lean_cnn", HYPERPARAMETERS, total_steps=1)
    with mlflow.start_run():
        info = pyfunc.log_servable_model(model)
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path))
    picture = (
        PROJECT_ROOT / "data" / "01_raw" / "photos" / "images" / "0_dark_on_light_photo_320px_1.jpg"
    )
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_PROJECT, local, str(picture)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    digits = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(digits) == 2 and all(digit in range(10) for digit in digits)
