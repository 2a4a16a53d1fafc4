"""Fixtures of the registration tests: a tiny model and permissive gate parameters."""

import numpy as np
import pytest

from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.pipelines.training.fit import fit_model
from mnist_mlops.pipelines.training.model import build_model
from mnist_mlops.registry.records import GateEvaluation
from tests.conftest import NO_RECIPE_EXTRAS

# The champion summary training hands to registration, for the tiny model.
CHAMPION = {
    "strategy": "single_node",
    "architecture": "lean_cnn",
    "run_id": "strategy-run",
    "params": {"epochs": 1, "batch_size": 64, "learning_rate": 0.003, "strategy": "single_node"},
    "metrics": {"validation_accuracy": 0.5, "images_per_s": 900.0, "train_s": 1.0},
}


@pytest.fixture(scope="session")
def tiny_model(small_model_input):
    """A CNN trained for one epoch on a few hundred MNIST images (~50% accurate)."""
    hyperparameters = {"epochs": 1, "batch_size": 64, "learning_rate": 0.003}
    hyperparameters.update(dropout=0.0, shift_px=0, seed=3, **NO_RECIPE_EXTRAS)
    model = build_model("lean_cnn", hyperparameters, total_steps=1)
    model.set_weights(fit_model(small_model_input, hyperparameters, "lean_cnn").weights)
    return model


@pytest.fixture
def registration_params(request):
    """Permissive gate parameters; each test registers its own model so its counts are exact
    (the servers are shared by the session, and one model is registered once)."""
    return RegistrationParameters(
        model_name=f"cnn-{request.node.name.removeprefix('test_')}",
        min_test_accuracy=0.3,
        max_regression=0.002,
        production_experiment="pushed-models",
    )


@pytest.fixture
def test_images(small_model_input):
    return small_model_input.load()["test_images"][:100].astype(np.float32)


def passed_gate(test_accuracy: float) -> GateEvaluation:
    """A gate evaluation that passed at ``test_accuracy``, with no production to compare with
    (what registration reads of it: the accuracy it tags the version with)."""
    return GateEvaluation(
        test_accuracy=test_accuracy,
        per_class={},
        production_version=None,
        production_test_accuracy=None,
        photo_images=0,
        photo_accuracy=0.0,
        photo_accuracy_by_category={},
        confusion_matrix=[],
        misread=[],
    )
