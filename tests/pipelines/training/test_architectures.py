"""The custom strategy trains each of ``training.architectures``; the report shows them all."""

import os

import mlflow
import numpy as np
import pytest
import yaml

from mnist_mlops.datasets import StrategyRunDataset
from mnist_mlops.pipelines.training.nodes import (
    compare_strategies,
    plot_strategy_comparison,
    select_champion,
    train_custom,
)
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.settings import CONFIG_LOADER_ARGS, CONFIG_LOADER_CLASS
from mnist_mlops.spark.strategies import SkippedStrategy, TrainingResult
from tests.conftest import PROJECT_ROOT

# What the other strategy nodes return when only custom is selected: the pipeline passes these.
SKIPPED = tuple(SkippedStrategy(s) for s in ("single_node", "local", "distributed"))


@pytest.fixture(scope="module")
def custom_results(spark, small_model_input) -> list[TrainingResult]:
    """Both architectures through the custom strategy: one epoch on a few hundred images."""
    with open(PROJECT_ROOT / "conf" / "base" / "parameters_training.yml") as f:
        training = yaml.safe_load(f)["training"]
    training["hyperparameters"].update(epochs=1, batch_size=64, learning_rate=0.003)
    training["architectures"] = "lean_cnn+original_cnn"  # the command-line form
    return train_custom(small_model_input, TrainingParameters.model_validate(training))


def _conv_layers(model) -> int:
    return sum(type(layer).__name__ == "Conv2D" for layer in model.layers)


def test_custom_trains_each_architecture_on_two_executors(custom_results, small_model_input):
    assert [r.architecture for r in custom_results] == ["lean_cnn", "original_cnn"]
    assert [r.strategy for r in custom_results] == ["custom", "custom"]
    # Each result holds its own architecture's model: the original has three conv layers.
    assert [_conv_layers(r.model) for r in custom_results] == [2, 3]
    images = small_model_input.load()["test_images"][:50].astype(np.float32)
    for result in custom_results:
        assert result.params["architecture"] == result.architecture
        assert result.params["workers"] == 2
        assert len(set(result.worker_pids)) == 2 and os.getpid() not in result.worker_pids
        assert result.model.predict(images, verbose=0).shape == (50, 10)
        assert result.metrics["test_accuracy"] > 0.4  # one epoch on 640 images; chance is 10%


def test_comparison_has_one_row_per_strategy_and_architecture(custom_results):
    comparison = compare_strategies(*SKIPPED, custom_results)
    assert comparison[["strategy", "architecture"]].values.tolist() == [
        ["custom", "lean_cnn"],
        ["custom", "original_cnn"],
    ]
    assert comparison["test_accuracy"].tolist() == [
        r.metrics["test_accuracy"] for r in custom_results
    ]


def test_chart_labels_each_architecture(custom_results):
    figure = plot_strategy_comparison(*SKIPPED, custom_results)
    curves, accuracy, throughput = figure.axes
    labels = ["custom/lean_cnn", "custom/original_cnn"]
    assert [text.get_text() for text in curves.get_legend().get_texts()] == labels
    for axes in (accuracy, throughput):
        assert [tick.get_text() for tick in axes.get_xticklabels()] == labels
    # Each test-accuracy bar is labelled with its percentage.
    percent = [f"{100 * r.metrics['test_accuracy']:.2f}" for r in custom_results]
    assert [text.get_text() for text in accuracy.texts] == percent


def test_each_architecture_is_its_own_run_and_the_champion_one_of_them(custom_results):
    dataset = StrategyRunDataset()
    dataset.save(custom_results)
    logged = dataset.load()
    assert [r.architecture for r in logged] == ["lean_cnn", "original_cnn"]
    runs = {r.architecture: mlflow.get_run(r.run_id) for r in logged}
    for architecture, run in runs.items():
        assert run.info.run_name == f"custom/{architecture}"
        assert run.data.tags["mnist.architecture"] == architecture
        assert run.data.params["architecture"] == architecture

    model, champion = select_champion(*SKIPPED, logged)
    winner = next(r for r in logged if r.run_id == champion["run_id"])
    assert model is winner.model
    assert (champion["strategy"], champion["architecture"]) == ("custom", winner.architecture)
    best = max(r.metrics["validation_accuracy"] for r in logged)
    assert round(winner.metrics["validation_accuracy"], 4) == round(best, 4)


def test_unselected_custom_strategy_is_skipped(small_model_input, quick_training):
    training = quick_training(strategies="single_node", architectures=["lean_cnn", "original_cnn"])
    assert train_custom(small_model_input, training) == [SkippedStrategy("custom")]


@pytest.mark.parametrize(
    ("env", "expected"), [("local", ["vgg_cnn"]), ("azure", ["vgg_cnn", "original_cnn"])]
)
def test_the_sandbox_compares_both_architectures_the_default_run_one(env, expected, tmp_path):
    # A copy without conf/local: personal overrides must not change what is tested here.
    conf = tmp_path / "conf"
    for name in ("base", env):
        (conf / name).mkdir(parents=True)
        source = PROJECT_ROOT / "conf" / name / "parameters_training.yml"
        if source.exists():
            (conf / name / "parameters_training.yml").write_text(source.read_text())
    loader = CONFIG_LOADER_CLASS(str(conf), env=env, **CONFIG_LOADER_ARGS)
    training = loader["parameters"]["training"]
    assert training["architectures"] == expected
    assert training["architecture"] == "vgg_cnn"  # the other strategies: the champion's


def test_a_run_too_short_to_time_compares_without_a_speedup():
    """A tiny run whose steps all fit in the first execution measures 0 images/s: the table
    leaves the speed-up empty instead of dividing by it."""
    metrics = dict.fromkeys(
        ("validation_accuracy", "test_accuracy", "test_loss", "wall_time_s", "startup_s"), 0.5
    ) | dict.fromkeys(("train_s", "validation_s", "teardown_s", "images_per_s"), 0.0)
    params = {"workers": 1, "device": "CPU"}
    untimed = TrainingResult("single_node", "vgg_cnn", None, {}, metrics, params)
    comparison = compare_strategies(untimed, *SKIPPED[1:])
    assert comparison["speedup_vs_single_node"].isna().all()
