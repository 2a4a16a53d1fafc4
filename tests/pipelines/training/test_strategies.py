"""Each strategy trains a real model on real MNIST images, on a real Spark local-cluster."""

import os

import numpy as np
import pytest

from mnist_mlops.pipelines.training.model import STEPS_PER_EXECUTION
from mnist_mlops.pipelines.training.nodes import (
    train_custom,
    train_distributed,
    train_local,
    train_single_node,
)
from mnist_mlops.pipelines.training.spark_runner import (
    DistributedTrainingError,
    run_with_runner,
)
from mnist_mlops.spark.strategies import SkippedStrategy, TrainingResult


def _assert_predicts(result, bundle):
    assert isinstance(result, TrainingResult)
    arrays = bundle.load()
    probabilities = result.model.predict(arrays["test_images"][:50].astype(np.float32), verbose=0)
    assert probabilities.shape == (50, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-4)
    # One epoch on 640 images: far better than chance (10%).
    assert result.metrics["test_accuracy"] > 0.4
    metrics = result.metrics
    assert metrics["startup_s"] > 0 and metrics["validation_s"] > 0 and metrics["teardown_s"] >= 0
    # Throughput is the training batches after the first execution over the training clock.
    trained_after_first = (640 // 64 - STEPS_PER_EXECUTION) * 64
    assert metrics["images_per_s"] == pytest.approx(trained_after_first / metrics["train_s"])
    parts = metrics["startup_s"] + metrics["train_s"] + metrics["validation_s"]
    assert parts + metrics["teardown_s"] < metrics["wall_time_s"]
    assert len(result.history["val_accuracy"]) == 1


@pytest.mark.slow  # trains
def test_single_node(small_model_input, quick_training):
    result = train_single_node(small_model_input, quick_training())
    _assert_predicts(result, small_model_input)
    assert result.worker_pids == [os.getpid()]


def test_local_mode_runs_in_the_driver(spark, small_model_input, quick_training):
    result = train_local(small_model_input, quick_training())
    _assert_predicts(result, small_model_input)
    assert result.worker_pids == [os.getpid()]


@pytest.mark.parametrize("train", [train_distributed, train_custom])
def test_two_executor_processes_train(spark, small_model_input, quick_training, train):
    result = train(small_model_input, quick_training())
    if train is train_custom:  # one result per training.architectures: [vgg_cnn] in base
        (result,) = result
        assert result.architecture == "vgg_cnn"
    _assert_predicts(result, small_model_input)
    assert result.params["workers"] == 2
    pids = result.worker_pids
    assert len(set(pids)) == 2 and os.getpid() not in pids, pids


def test_unselected_strategy_is_skipped(small_model_input, quick_training):
    training = quick_training(strategies="single_node+local")
    assert train_distributed(small_model_input, training) == SkippedStrategy("distributed")


def test_a_failing_worker_surfaces_its_own_error(spark):
    # A lambda travels by value, so the worker runs it and it raises there.
    with pytest.raises(
        DistributedTrainingError,
        match=r"worker [01] \(executor \d+ at [\w.]+:\d+, pid \d+ on .*ValueError: .*shard 3",
    ):
        run_with_runner(
            lambda: int("shard 3"),
            num_slots=2,
            local_mode=False,
            use_gpu=False,
            custom_strategy=True,
        )


def _defined_in_the_tests_package():
    return 1


def test_a_worker_failing_before_training_names_the_python_error(spark):
    # Workers cannot import the tests package: unpickling the function fails in the worker.
    with pytest.raises(
        DistributedTrainingError, match="ModuleNotFoundError: No module named 'tests"
    ):
        run_with_runner(
            _defined_in_the_tests_package,
            num_slots=2,
            local_mode=False,
            use_gpu=False,
            custom_strategy=True,
        )


@pytest.mark.slow  # trains
def test_gpu_requested_without_gpu_falls_back_to_cpu(small_model_input, quick_training, caplog):
    result = train_single_node(small_model_input, quick_training(use_gpu=True))
    assert result.params["device"] == "CPU"
    assert "TensorFlow sees no GPU on this machine: training on CPU instead" in caplog.text


def test_distributed_gpu_without_spark_gpu_scheduling_falls_back(spark, caplog):
    from mnist_mlops.pipelines.training.nodes import use_gpu

    assert use_gpu(True, distributed=True) is False
    assert "spark.task.resource.gpu.amount is not set" in caplog.text
