"""A Kedro dataset that records a strategy's training results, each as its own MLflow run."""

from __future__ import annotations

import dataclasses
from importlib.metadata import version
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from mnist_mlops.spark.strategies import SkippedStrategy, TrainingResult

Result = TrainingResult | SkippedStrategy

_EXAMPLE = np.zeros((1, 28, 28), dtype=np.float32)  # one blank image of 0-255 pixels
_REQUIREMENTS = ("tensorflow", "tf-keras")


class StrategyRunDataset(AbstractDataset[Result | list[Result], Any]):
    """Logs each :class:`TrainingResult` as an MLflow run named ``strategy/architecture``.

    A strategy node saves one result, or a list of them (the custom strategy trains each of
    ``training.architectures``): each becomes its own run. The runs are nested in the run
    kedro-mlflow opened for the pipeline, so ``mlflow ui`` shows them side by side, each with its
    parameters, per-epoch metrics, evaluation, timing and model. Loading returns what was saved
    in this session, each result with its ``run_id``.

    Example catalog entry (a dataset factory)::

        "{strategy}_result":
          type: mnist_mlops.datasets.StrategyRunDataset
    """

    def __init__(self, *, artifact_path: str = "model", metadata: dict[str, Any] | None = None):
        self._artifact_path = artifact_path
        self._result: Result | list[Result] | None = None
        self.metadata = metadata

    def save(self, data: Result | list[Result]) -> None:
        if isinstance(data, list):
            self._result = [self._log(result) for result in data]
        else:
            self._result = self._log(data)

    def _log(self, data: Result) -> Result:
        if isinstance(data, SkippedStrategy):
            return data
        import mlflow
        import mlflow.tensorflow
        from mlflow.entities import Metric

        nested = mlflow.active_run() is not None
        with mlflow.start_run(run_name=data.label, nested=nested) as run:
            mlflow.set_tags(
                {
                    "mnist.strategy": data.strategy,
                    "mnist.architecture": data.architecture,
                    "mnist.worker_pids": str(data.worker_pids),
                }
            )
            mlflow.log_params(data.params)
            timestamp = int(run.info.start_time)
            history = [
                Metric(name, value, timestamp, epoch)
                for name, values in data.history.items()
                for epoch, value in enumerate(values, start=1)
            ]
            mlflow.tracking.MlflowClient().log_batch(run.info.run_id, metrics=history)
            mlflow.log_metrics(data.metrics)
            _keras_progress_to_log()  # MLflow predicts the input example to check it
            mlflow.tensorflow.log_model(
                _without_optimizer(data.model),
                name=self._artifact_path,
                signature=_signature(),
                input_example=_EXAMPLE,
                # Pinned to this environment, so MLflow need not infer them (uv export, pip).
                pip_requirements=[f"{name}=={version(name)}" for name in _REQUIREMENTS],
            )
        return dataclasses.replace(data, run_id=run.info.run_id)

    def load(self) -> Result | list[Result]:
        if self._result is None:
            raise DatasetError(
                "No training result in this session: run the training pipeline (its strategy "
                "nodes produce the results that comparison and champion selection read)"
            )
        return self._result

    def _describe(self) -> dict[str, Any]:
        return {"artifact_path": self._artifact_path}


def _signature() -> Any:
    """The models take raw (N, 28, 28) images of 0-255 pixels and return ten probabilities each."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 28, 28))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 10))]),
    )


def _keras_progress_to_log() -> None:
    """Keras's progress bars (``1/1 [====]``, drawn for a terminal) go to absl's log at INFO,
    not shown, instead of the run's output."""
    import tensorflow as tf

    tf.keras.utils.disable_interactive_logging()


def _without_optimizer(model: Any) -> Any:
    """The model, uncompiled: logged to compare and to serve, not to resume training.

    A compiled model saves an optimizer without state, and MLflow, reloading it to check the
    input example, warns that it skips restoring it (TF-Keras's native format cannot leave the
    optimizer out any other way).
    """
    import tensorflow as tf

    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
