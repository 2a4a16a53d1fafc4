"""Typed parameters: each section's model, its messages, and a ``kedro run`` refused before its
first node."""

import mlflow
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation import ParameterValidationError

from mnist_mlops.config.parameters import closest_key
from mnist_mlops.pipelines import section_models
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS
from tests.conftest import PROJECT_ROOT, RAW_MNIST

MODELS = section_models()


def _parameters(env: str = "local") -> dict:
    loader = CONFIG_LOADER_CLASS(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def _with(section: str, changes: dict) -> dict:
    """The base section with ``changes`` merged in, one level of nesting deep."""
    values = _parameters()[section]
    for key, value in changes.items():
        nested = isinstance(value, dict) and isinstance(values.get(key), dict)
        values[key] = {**values[key], **value} if nested else value
    return values


@pytest.mark.parametrize("env", ["local", "azure", "gcp"])
def test_every_environment_validates(env):
    parameters = _parameters(env)
    assert set(MODELS) | {"serving"} == set(parameters)
    for name, model in MODELS.items():
        assert model.model_validate(parameters[name]).model_dump(mode="json") == parameters[name]


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        (
            "data_prep",
            {"max_train_images": -1},
            "data_prep.max_train_images=-1: .* greater than or equal to 0",
        ),
        ("training", {"hyperparameters": {"epochs": 0}}, r"training.hyperparameters.epochs=0"),
        (
            "training",
            {"hyperparameters": {"thicken": 1.5}},
            r"training.hyperparameters.thicken=1.5: .* less than or equal to 1",
        ),
        ("training", {"custom": {"communication": "smoke"}}, "'auto', 'ring' or 'nccl'"),
        ("training", {"architecture": "resnet50"}, "training.architecture='resnet50'"),
        (
            "registration",
            {"min_test_accuracy": 1.5},
            r"min_test_accuracy=1.5: .* less than or equal to 1",
        ),
        ("deployment", {"version": 0}, r"deployment.version=0: .* greater than or equal to 1"),
        ("deployment", {"rollback": "maybe"}, "deployment.rollback='maybe'"),
        ("monitoring", {"thresholds": {"min_accuracy": 2}}, "monitoring.thresholds.min_accuracy"),
        ("batch_predict", {"partitions": -2}, "batch_predict.partitions=-2"),
    ],
)
def test_values_out_of_range_name_the_key(section, changes, message):
    with pytest.raises(ParameterValidationError, match=message):
        MODELS[section].model_validate(_with(section, changes))


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        ("training", {"epochs": 1}, "training.epochs .* mean training.hyperparameters.epochs"),
        ("training", {"hyperparameters": {"epoch": 1}}, "mean training.hyperparameters.epochs"),
        ("training", {"hyperparams": {}}, "did you mean training.hyperparameters"),
        ("data_prep", {"max_train": 10}, "did you mean data_prep.max_train_images"),
        ("registration", {"min_accuracy": 0.9}, "did you mean registration.min_test_accuracy"),
        ("deployment", {"versoin": 3}, "did you mean deployment.version"),
        ("monitoring", {"max_ink_drift": 0.1}, "mean monitoring.thresholds.max_ink_drift"),
        ("batch_predict", {"zzz": 1}, "batch_predict.zzz is not a parameter; see conf"),
    ],
)
def test_unknown_keys_name_the_closest_valid_key(section, changes, message):
    with pytest.raises(ParameterValidationError, match=message):
        MODELS[section].model_validate(_with(section, changes))


def test_a_missing_key_is_named():
    values = _with("training", {})
    del values["hyperparameters"]["seed"]
    with pytest.raises(
        ParameterValidationError, match=r"^training.hyperparameters.seed is missing$"
    ):
        TrainingParameters.model_validate(values)


def test_closest_key_prefers_a_sibling():
    assert closest_key(TrainingParameters, ("custom", "num_slot")) == ("custom", "num_slots")
    assert closest_key(TrainingParameters, ("distributed", "num_slot")) == (
        "distributed",
        "num_slots",
    )


def test_lists_join_with_plus_on_the_command_line():
    training = TrainingParameters.model_validate(
        _with("training", {"strategies": "single_node + local", "architectures": "original_cnn"})
    )
    assert training.strategies == ["single_node", "local"]
    assert training.architectures == ["original_cnn"]
    with pytest.raises(ParameterValidationError, match=r"training.strategies='gpu_magic'"):
        TrainingParameters.model_validate(_with("training", {"strategies": "local+gpu_magic"}))
    with pytest.raises(ParameterValidationError, match=r"'resnet50': .*'lean_cnn' or 'orig"):
        TrainingParameters.model_validate(_with("training", {"architectures": "lean_cnn+resnet50"}))
    with pytest.raises(
        ParameterValidationError, match=r"training.architectures='\+': .*at least 1"
    ):
        TrainingParameters.model_validate(_with("training", {"architectures": "+"}))


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A scratch project directory: raw data linked in, every output and store written here."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    monkeypatch.chdir(tmp_path)
    # Absolute: MLflow caches a store per URI, and a relative one would outlive its directory.
    monkeypatch.setenv("AZURE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/sandbox.db")
    bootstrap_project(PROJECT_ROOT)
    return tmp_path


def _run(project_dir, runtime_params: dict, pipeline: str = "data_prep") -> None:
    with KedroSession.create(
        project_path=project_dir,
        conf_source=str(PROJECT_ROOT / "conf"),
        runtime_params=runtime_params,
    ) as session:
        session.run(pipeline_names=[pipeline])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime_params", "message"),
    [
        # A key of the selected pipeline's section: Kedro's validation.
        ({"data_prep": {"max_train_image": 9}}, "did you mean data_prep.max_train_images"),
        # Of a section no selected node reads, and an unknown section: the project's hook.
        ({"training": {"epochs": 1}}, "did you mean training.hyperparameters.epochs"),
        ({"trainig": {"strategies": "local"}}, "trainig is not a parameter section; .* training"),
    ],
)
def test_kedro_run_refuses_a_wrong_key_before_the_first_node(project_dir, runtime_params, message):
    with pytest.raises(ParameterValidationError, match=message):
        _run(project_dir, runtime_params)
    assert not (project_dir / "data" / "05_model_input").exists()


@pytest.mark.slow
def test_typed_parameters_are_logged_flattened(project_dir):
    _run(project_dir, {"data_prep": {"max_train_images": 300, "validation_images": 100}})
    mlflow.set_tracking_uri(f"sqlite:///{project_dir}/sandbox.db")
    (run,) = mlflow.search_runs(experiment_names=["mnist-mlops"], output_format="list")
    assert run.data.params == {
        "data_prep.max_train_images": "300",
        "data_prep.validation_images": "100",
        "data_prep.seed": "42",
    }
