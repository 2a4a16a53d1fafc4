"""The training function every strategy runs: in the driver, or inside a Spark task."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.pipelines.training.model import build_model

logger = logging.getLogger(__name__)

COMMUNICATIONS = ("auto", "ring", "nccl")


@dataclass
class FitOutcome:
    """What a training function returns to the driver (picklable, no TensorFlow objects)."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    first_step_at: float
    finished_at: float
    images_trained: int
    worker_pids: list[int]


def _worker_rank() -> int:
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return int(tf_config.get("task", {}).get("index", 0))


def fit_model(
    bundle: ArrayBundle,
    hyperparameters: dict[str, Any],
    architecture: str,
    communication: str | None = None,
) -> FitOutcome:
    """Train one model on the bundle's training split, validating after each epoch.

    Runs under whatever ``tf.distribute`` strategy is in scope (none in the driver, the runner's
    ``MultiWorkerMirroredStrategy`` in a Spark task), or, when ``communication`` is given, under
    its own ``MultiWorkerMirroredStrategy`` with that collective implementation (the custom
    strategy). Each worker reads the data from the bundle's storage and trains on its own shard.
    """
    import tensorflow as tf

    if communication is None:
        strategy = tf.distribute.get_strategy()
    else:
        # Spark reuses Python workers: one that ran an earlier training job still has that
        # job's collective context, and a second strategy would wait on it forever. The runner
        # resets it the same way before its own strategy.
        from tensorflow.python.eager import context

        context._reset_context()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=getattr(
                tf.distribute.experimental.CommunicationImplementation, communication.upper()
            )
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)

    _log_progress_to_stderr()
    tf.keras.utils.set_random_seed(hyperparameters["seed"])
    arrays = bundle.load()
    train_x, train_y = arrays["train_images"], arrays["train_labels"]
    global_batch = hyperparameters["batch_size"]
    epochs = hyperparameters["epochs"]
    steps_per_epoch = max(len(train_x) // global_batch, 1)

    # Random shifts of up to ``shift_px`` pixels: MNIST digits are centred by centre of mass,
    # so small translations are the cheapest augmentation that still teaches something.
    shift = hyperparameters["shift_px"] / 28
    translate = tf.keras.layers.RandomTranslation(
        shift, shift, fill_mode="constant", seed=hyperparameters["seed"]
    )

    def augment(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.cast(images, tf.float32)
        if shift:
            images = translate(images[..., tf.newaxis], training=True)[..., 0]
        return images, labels

    def train_dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch = context.get_per_replica_batch_size(global_batch)
        return (
            tf.data.Dataset.from_tensor_slices((train_x, train_y))
            .shard(context.num_input_pipelines, context.input_pipeline_id)
            .shuffle(len(train_x), seed=hyperparameters["seed"], reshuffle_each_iteration=True)
            .repeat()
            .batch(batch, drop_remainder=True)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    validation = (
        tf.data.Dataset.from_tensor_slices(
            (arrays["validation_images"], arrays["validation_labels"])
        )
        .batch(1024)
        .map(lambda x, y: (tf.cast(x, tf.float32), y))
    )
    logger.info(
        "worker %d: training on %d images, %d steps per epoch",
        _worker_rank(),
        len(train_x) // strategy.num_replicas_in_sync,
        steps_per_epoch,
    )
    with strategy.scope():
        model = build_model(architecture, hyperparameters, steps_per_epoch * epochs)
    progress = _make_progress(epochs, _worker_rank())
    history = model.fit(
        strategy.distribute_datasets_from_function(train_dataset),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=[progress],
        verbose=0,
    )
    finished_at = time.time()
    per_worker_images = progress.batches * global_batch // strategy.num_replicas_in_sync
    # Every worker contributes its pid: proof that distinct processes shared the work. Inside a
    # tf.function, as a multi-worker strategy wants its collectives (eagerly it warns).
    worker_pids = tf.function(
        lambda: strategy.gather(
            strategy.run(lambda: tf.constant([os.getpid()], dtype=tf.int64)), axis=0
        )
    )()
    return FitOutcome(
        weights=model.get_weights(),
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        first_step_at=progress.first_step_at,
        finished_at=finished_at,
        images_trained=per_worker_images * strategy.num_replicas_in_sync,
        worker_pids=[int(pid) for pid in np.asarray(worker_pids).ravel()],
    )


def _log_progress_to_stderr() -> None:
    """In a Spark task (no logging configured), send this project's progress lines to stderr.

    Only the project's logger: configuring the root logger would print TensorFlow's records twice
    (it has its own handler) and lower its level to INFO.
    """
    project = logging.getLogger("mnist_mlops")
    if logging.getLogger().handlers or project.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    project.addHandler(handler)
    project.setLevel(logging.INFO)


def _make_progress(epochs: int, rank: int):
    """A callback that logs one line per epoch and records when the first step finished."""
    import tensorflow as tf

    class Progress(tf.keras.callbacks.Callback):
        first_step_at = 0.0
        batches = 0
        epoch_started = 0.0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if not self.first_step_at:
                self.first_step_at = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            logger.info(
                "worker %d epoch %d/%d: loss %.4f, accuracy %.4f, val_accuracy %.4f (%.1f s)",
                rank,
                epoch + 1,
                epochs,
                logs.get("loss", float("nan")),
                logs.get("accuracy", float("nan")),
                logs.get("val_accuracy", float("nan")),
                time.time() - self.epoch_started,
            )

    return Progress()
