"""The tuning parameters, the study storage and the study's checks: no Spark, no training."""

import socket

import optuna
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation import ParameterValidationError

from mnist_mlops.datasets import StudyStorage, StudyStorageDataset
from mnist_mlops.datasets.study_storage_dataset import StudyStorageError
from mnist_mlops.pipelines.training.nodes import choose_recipe
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.pipelines.tune.nodes import open_tuning_study
from mnist_mlops.pipelines.tune.parameters import TuningParameters
from mnist_mlops.pipelines.tune.study import StudyError, sample
from tests.conftest import PROJECT_ROOT, RAW_MNIST


def _section(name: str) -> dict:
    path = PROJECT_ROOT / "conf" / "base" / f"parameters_{name}.yml"
    return yaml.safe_load(path.read_text())[name]


def tuning(space: dict | None = None, **changes) -> TuningParameters:
    values = _section("tuning")
    values["space"].update(space or {})
    return TuningParameters.model_validate({**values, **changes})


@pytest.mark.parametrize(
    ("changes", "space", "message"),
    [
        ({}, {"dropout": {"low": 0.5, "high": 0.1}}, r"space.dropout=.*inverted range: low 0.5"),
        ({}, {"batch_size": []}, r"tuning.space.batch_size=.*an empty list of choices"),
        (
            {},
            {"blur": {"low": 0.0, "high": 1.5}},
            r"tuning.space.blur=.*1.5: .* less than or equal",
        ),
        ({}, {"architecture": "vgg_cnn+resnet"}, r"architecture='resnet': .*'lean_cnn'"),
        ({}, {"dropout": {"low": 0.1, "high": 1.0}}, r"dropout=.*1.0: Input should be less than 1"),
        ({}, {"learning_rate": {"low": 0, "high": 0.1, "log": True}}, r"log-scale .* above 0"),
        ({"budget_minutes": 0}, {}, r"tuning.budget_minutes=0: Input should be greater than 0"),
        ({"n_trials": 0}, {}, r"tuning.n_trials=0: .* greater than or equal to 1"),
        ({"n_trials": None, "budget_minutes": None}, {}, r"no budget: set tuning.n_trials or"),
    ],
)
def test_bad_parameters_are_refused_with_the_key_in_full(changes, space, message):
    with pytest.raises(ParameterValidationError, match=message):
        tuning(space, **changes)


def test_a_space_samples_choices_ranges_and_log_ranges():
    space = tuning({"batch_size": "64+128", "epochs": 2, "architecture": "lean_cnn"}).space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = [sample(study.ask(), space) for _ in range(20)]
    assert {v["batch_size"] for v in values} == {64, 128}
    assert {v["epochs"] for v in values} == {2} and {v["architecture"] for v in values} == {
        "lean_cnn"
    }
    assert all(0.001 <= v["learning_rate"] <= 0.01 for v in values)
    assert isinstance(values[0]["shift_px"], int) and isinstance(values[0]["zoom"], float)
    # The stroke and focus changes are searched too, within the recipe's bounds.
    assert all(0 <= v["thicken"] <= 0.3 and 0 <= v["blur"] <= 0.3 for v in values)
    assert len({v["low_resolution"] for v in values}) > 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_storage_stops_before_any_trial_without_its_password(tmp_path, caplog):
    url = f"postgresql+psycopg2://optuna:s3cret-pw@127.0.0.1:{_free_port()}/optuna"
    storage = StudyStorageDataset(journal=str(tmp_path / "j.log"), credentials={"url": url}).load()
    with pytest.raises(StudyStorageError, match="cannot be opened") as refused:
        open_tuning_study(tuning(), storage)
    shown = [str(refused.value), repr(storage), storage.display, caplog.text]
    assert not any("s3cret" in text for text in shown), shown
    assert f"postgresql database optuna at 127.0.0.1:{url.split(':')[-1].split('/')[0]}" in (
        str(refused.value)
    )


def test_a_study_resumes_with_its_space_and_refuses_another(tmp_path):
    storage = StudyStorage(journal=str(tmp_path / "journal.log"))
    handle = open_tuning_study(tuning(), storage)
    study = handle.load()
    study.tell(study.ask(), 0.5)
    assert len(open_tuning_study(tuning(), storage).load().trials) == 1  # resumed
    with pytest.raises(StudyError, match=r"another search space \(tuning.space.epochs: .*then"):
        open_tuning_study(tuning({"epochs": {"low": 1, "high": 2, "log": False}}), storage)


def test_the_tuned_recipe_is_the_best_completed_trial(tmp_path):
    storage = StudyStorage(journal=str(tmp_path / "journal.log"))
    space = {"architecture": "lean_cnn+vgg_cnn", "epochs": {"low": 1, "high": 3, "log": False}}
    study = open_tuning_study(tuning(space), storage).load()
    for value in (0.97, 0.99, 0.98):
        trial = study.ask()
        sample(trial, tuning(space).space)
        study.tell(trial, value)
    best = study.trials[1]
    training = TrainingParameters.model_validate(
        {**_section("training"), "recipe": "tuned", "architectures": ["vgg_cnn", "original_cnn"]}
    )
    tuned, report = choose_recipe(training, tuning(space), storage)
    assert report | {"params": None} == {
        "recipe": "tuned",
        "study": "mnist-recipe",
        "storage": storage.display,
        "trial": 1,
        "val_accuracy": 0.99,
        "params": None,
    }
    assert tuned.architecture == best.params["architecture"]
    assert tuned.architectures[0] == best.params["architecture"] and "original_cnn" in (
        tuned.architectures
    )
    for name, value in best.params.items():
        if name != "architecture":
            assert getattr(tuned.hyperparameters, name) == value
    assert tuned.hyperparameters.seed == training.hyperparameters.seed  # not searched: kept
    default = training.model_copy(update={"recipe": "default"})
    assert choose_recipe(default, tuning(space), storage) == (default, {"recipe": "default"})


def test_tuned_without_a_completed_trial_says_what_to_run(tmp_path):
    storage = StudyStorage(journal=str(tmp_path / "journal.log"))
    training = TrainingParameters.model_validate({**_section("training"), "recipe": "tuned"})
    with pytest.raises(StudyError, match=r"No study 'mnist-recipe' .*kedro run --pipeline tune"):
        choose_recipe(training, tuning(), storage)
    open_tuning_study(tuning(), storage)
    with pytest.raises(StudyError, match="has no completed trial yet"):
        choose_recipe(training, tuning(), storage)


@pytest.mark.slow  # a Kedro session (no Spark: refused before)
def test_kedro_run_refuses_a_zero_budget_before_any_trial(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "01_raw").symlink_to(RAW_MNIST.parent)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/sandbox.db")
    bootstrap_project(PROJECT_ROOT)
    with (
        pytest.raises(ParameterValidationError, match=r"tuning\.budget_minutes=0"),
        KedroSession.create(
            project_path=tmp_path,
            conf_source=str(PROJECT_ROOT / "conf"),
            env="azure",
            runtime_params={"tuning": {"budget_minutes": 0}},
        ) as session,
    ):
        session.run(pipeline_names=["tune"])
    assert not (tmp_path / "data" / "06_models").exists()  # no study, no trial
