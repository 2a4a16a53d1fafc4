"""The training function every strategy runs: in the driver, or inside a Spark task."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_mlops.datasets import ArrayBundle
from mnist_mlops.pipelines.training.model import STEPS_PER_EXECUTION, build_model, one_hot

logger = logging.getLogger(__name__)

COMMUNICATIONS = ("auto", "ring", "nccl")


@dataclass
class FitOutcome:
    """What a training function returns to the driver (picklable, no TensorFlow objects)."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    clock: TrainingClock
    worker_pids: list[int]


@dataclass
class TrainingClock:
    """When training happened, read from callbacks rather than around ``fit``.

    ``fit`` may return seconds after its last batch (a tf.data autotune pause was measured at
    ~2 s), and each epoch ends with a validation pass: neither is training, so throughput is
    computed from ``train_s`` alone and the rest is reported on its own.
    """

    first_step_at: float = 0.0  # end of the first execution: tracing and start-up are before
    train_s: float = 0.0  # after the first execution, training batches only
    timed_steps: int = 0  # the global batches trained within ``train_s``
    validation_s: float = 0.0  # the validation passes at the end of each epoch
    ended_at: float = 0.0  # end of the last epoch (its validation included)


def _worker_rank() -> int:
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return int(tf_config.get("task", {}).get("index", 0))


def fit_model(
    bundle: ArrayBundle,
    hyperparameters: dict[str, Any],
    architecture: str,
    communication: str | None = None,
    callbacks: Sequence[Any] = (),
) -> FitOutcome:
    """Train one model on the bundle's training split, validating after each epoch.

    Runs under whatever ``tf.distribute`` strategy is in scope (none in the driver, the runner's
    ``MultiWorkerMirroredStrategy`` in a Spark task), or, when ``communication`` is given, under
    its own ``MultiWorkerMirroredStrategy`` with that collective implementation (the custom
    strategy). Each worker reads the data from the bundle's storage and trains on its own shard.
    """
    strategy = _prepare_worker(communication, hyperparameters["seed"])
    arrays = bundle.load()
    epochs = hyperparameters["epochs"]
    steps_per_epoch = _steps_per_epoch(arrays, hyperparameters["batch_size"], strategy)
    model = _replicated_model(strategy, architecture, hyperparameters, steps_per_epoch * epochs)
    progress = progress_callback(epochs, _worker_rank())
    history = model.fit(
        strategy.distribute_datasets_from_function(
            lambda context: training_dataset(arrays, hyperparameters, context)
        ),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=evaluation_dataset(
            arrays["validation_images"], arrays["validation_labels"]
        ),
        callbacks=[progress, *callbacks],
        verbose=0,
    )
    return FitOutcome(
        weights=model.get_weights(),
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        clock=progress.clock,
        worker_pids=_worker_pids(strategy),
    )


def _prepare_worker(communication: str | None, seed: int):
    """This process made ready to train, seeded with ``seed``: the strategy it trains under."""
    import tensorflow as tf

    strategy = _strategy(communication)
    _device_datasets_without_autotuning()
    _log_progress_to_stderr()
    tf.keras.utils.set_random_seed(seed)
    return strategy


def _replicated_model(
    strategy, architecture: str, hyperparameters: dict[str, Any], total_steps: int
):
    """The model to train, made in ``strategy``'s scope so its variables live on every replica."""
    with strategy.scope():
        return build_model(
            architecture,
            hyperparameters,
            total_steps,
            STEPS_PER_EXECUTION,
            hyperparameters["precision"],
        )


def _steps_per_epoch(arrays: dict[str, np.ndarray], global_batch: int, strategy) -> int:
    """Steps of ``global_batch`` images per epoch; logs each worker's share."""
    steps = max(len(arrays["train_images"]) // global_batch, 1)
    logger.info(
        "worker %d: training on %d images, %d steps per epoch",
        _worker_rank(),
        len(arrays["train_images"]) // strategy.num_replicas_in_sync,
        steps,
    )
    return steps


def _worker_pids(strategy) -> list[int]:
    """Every worker's pid, gathered: proof that distinct processes shared the work.

    Inside a ``tf.function``, as a multi-worker strategy wants its collectives (eagerly it warns).
    """
    import tensorflow as tf

    pids = tf.function(
        lambda: strategy.gather(
            strategy.run(lambda: tf.constant([os.getpid()], dtype=tf.int64)), axis=0
        )
    )()
    return [int(pid) for pid in np.asarray(pids).ravel()]


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


def _strategy(communication: str | None):
    """The strategy in scope, or a new ``MultiWorkerMirroredStrategy`` using ``communication``."""
    import tensorflow as tf

    if communication is None:
        return tf.distribute.get_strategy()
    # Spark reuses Python workers: one that ran an earlier training job still has that job's
    # collective context, and a second strategy would wait on it forever. The runner resets it
    # the same way before its own strategy.
    from tensorflow.python.eager import context

    context._reset_context()
    implementation = getattr(
        tf.distribute.experimental.CommunicationImplementation, communication.upper()
    )
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _device_datasets_without_autotuning() -> None:
    """Turn tf.data autotuning off in the per-device datasets of tf.distribute's input.

    Under a ``MultiWorkerMirroredStrategy`` each worker's batches pass through a multi-device
    iterator whose per-device datasets TensorFlow builds without the training dataset's options,
    so autotuning runs there. Its model thread sleeps up to 60 s between optimizations and is
    not woken when the iterator is destroyed: ``fit`` returned 0-60 s after its last epoch (the
    tail of the distributed and local strategies; the stacks in docs/training.md). TensorFlow
    2.21 has no public switch, so the private builder is wrapped; if it is gone, nothing changes.
    """
    from tensorflow.python.data.ops import multi_device_iterator_ops as ops

    build = getattr(ops, "_create_device_dataset", None)
    if build is None or getattr(build, "without_autotuning", False):
        return

    def build_without_autotuning(*args, **kwargs):
        return build(*args, **kwargs).with_options(_fixed_pipeline())

    build_without_autotuning.without_autotuning = True  # type: ignore[attr-defined]
    ops._create_device_dataset = build_without_autotuning


def _fixed_pipeline():
    """tf.data options without autotuning.

    With autotuning on, ``fit`` returned 1.7-2.4 s after each run's last epoch (measured); a
    fixed one-call map with two prefetched batches trains as fast on these CPUs, and stops at once.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def training_dataset(arrays: dict[str, np.ndarray], hyperparameters: dict[str, Any], context=None):
    """Shuffled, augmented, endlessly repeated batches of this worker's shard of the images.

    Args:
        arrays: ``train_images`` (uint8, N x 28 x 28) and ``train_labels``.
        hyperparameters: ``batch_size`` (global), ``seed`` and the augmentation's settings.
        context: the ``tf.distribute.InputContext`` of a distributed worker; ``None`` in a
            single process.
    """
    import tensorflow as tf

    context = context or tf.distribute.InputContext()
    augment = _augmentation(hyperparameters)
    images, labels = arrays["train_images"], arrays["train_labels"]
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shard(context.num_input_pipelines, context.input_pipeline_id)
        .shuffle(len(images), seed=hyperparameters["seed"], reshuffle_each_iteration=True)
        .repeat()
        .batch(
            context.get_per_replica_batch_size(hyperparameters["batch_size"]), drop_remainder=True
        )
        .map(augment, num_parallel_calls=1)
        .prefetch(2)
        .with_options(_fixed_pipeline())
    )


def evaluation_dataset(images: np.ndarray, labels: np.ndarray):
    """Images and labels in batches of 1024, as the model takes them: float pixels, one-hot."""
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(1024)
        .map(lambda x, y: (tf.cast(x, tf.float32), one_hot(y)))
        .with_options(_fixed_pipeline())
    )


def _augmentation(hyperparameters: dict[str, Any]):
    """A batch map: float pixels, randomly rotated, scaled and shifted; one-hot labels.

    Rotation by up to ``rotation_deg`` degrees, scaling by up to ``zoom`` (a fraction) and
    shifts by up to ``shift_px`` pixels (0 turns each off) are the distortions of handwriting
    that MNIST's centring by centre of mass leaves; each costs one image resampling per batch.
    """
    import tensorflow as tf

    layers, seed = tf.keras.layers, hyperparameters["seed"]
    rotation, zoom = hyperparameters["rotation_deg"] / 360, hyperparameters["zoom"]
    shift = hyperparameters["shift_px"] / 28
    distortions = [
        *([layers.RandomRotation(rotation, fill_mode="constant", seed=seed)] if rotation else []),
        *([layers.RandomZoom(zoom, fill_mode="constant", seed=seed)] if zoom else []),
        *(
            [layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed)]
            if shift
            else []
        ),
    ]

    restyle = _stroke_and_focus(hyperparameters)

    def augment(images, labels):
        images = restyle(tf.cast(images, tf.float32)[..., tf.newaxis])
        for distortion in distortions:
            images = distortion(images, training=True)
        return images[..., 0], one_hot(labels)

    return augment


# What each restyling is applied to: a random fraction of the batch, per image.
RESTYLINGS = ("thicken", "thin", "low_resolution", "blur")


def _stroke_and_focus(hyperparameters: dict[str, Any]):
    """A batch map (N, 28, 28, 1) changing strokes and focus as real pictures reach the model.

    A picture's digit reaches the model with strokes wider than MNIST's (a marker: the
    preprocessing thins them only half-way), narrower (a fine pen), soft (a blurred photo) or
    blocky (a low-resolution scan enlarged). Each change of :func:`_restylings` is applied to
    its fraction of the images (``thicken``, ``thin``, ``low_resolution``, ``blur``), chosen
    per image, and a changed image is rescaled to a full 255 as the preprocessing does. Whole-
    batch tensor operations: a few small filters per batch, next to the network's cost.
    """
    import tensorflow as tf

    fractions = {name: float(hyperparameters[name]) for name in RESTYLINGS}
    seed = hyperparameters["seed"]
    changes = _restylings(seed)

    def restyle(images):
        # Each its own seed: one seed would choose the same images for every change.
        for offset, name in enumerate(RESTYLINGS, start=1):
            if fractions[name]:
                chosen = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed + offset)
                changed = changes[name](images)
                peak = tf.reduce_max(changed, axis=(1, 2, 3), keepdims=True)
                changed = changed * 255 / tf.maximum(peak, 1.0)
                images = tf.where(chosen < fractions[name], changed, images)
        return images

    return restyle


def _restylings(seed: int) -> dict[str, Any]:
    """Batch maps by name: strokes grown by a grey dilation (half the images by 2 x 2, one
    pixel wider, half by 3 x 3, two), thinned by a 2 x 2 grey erosion, resampled through
    14 x 14 (a digit drawn at 10 pixels, enlarged), blurred by a 3 x 3 binomial filter."""
    import tensorflow as tf

    binomial = tf.constant([1.0, 2.0, 1.0]) / 4
    kernel = (binomial[:, None] * binomial[None, :])[:, :, None, None]

    def thicken(images):
        wide = tf.nn.max_pool2d(images, 3, 1, "SAME")
        narrow = tf.nn.max_pool2d(images, 2, 1, "SAME")
        half = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
        return tf.where(half, narrow, wide)

    return {
        "thicken": thicken,
        "thin": lambda images: -tf.nn.max_pool2d(-images, 2, 1, "SAME"),
        "low_resolution": lambda images: tf.image.resize(
            tf.image.resize(images, (14, 14), "area"), (28, 28), "bilinear"
        ),
        "blur": lambda images: tf.nn.conv2d(images, kernel, 1, "SAME"),
    }


def progress_callback(epochs: int, rank: int):
    """A callback that logs one line per epoch and keeps the :class:`TrainingClock`."""
    import tensorflow as tf

    class Progress(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.clock = TrainingClock()
            self.epoch_steps = self.untimed_steps = 0
            self.epoch_started = self.last_step_at = self.validation_started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.time()
            self.epoch_steps = self.untimed_steps = 0

        def on_train_batch_end(self, batch, logs=None):
            # Once per execution of STEPS_PER_EXECUTION steps; ``batch`` is the epoch's last
            # step so far (0-based).
            now = time.time()
            if not self.clock.first_step_at:  # tracing and start-up end with the first one
                self.clock.first_step_at = self.epoch_started = now
                self.untimed_steps = batch + 1
            self.epoch_steps = batch + 1
            self.last_step_at = now

        def on_test_begin(self, logs=None):  # the epoch's training batches are done
            self.clock.train_s += self.last_step_at - self.epoch_started
            self.clock.timed_steps += self.epoch_steps - self.untimed_steps
            self.validation_started = time.time()

        def on_test_end(self, logs=None):
            self.clock.validation_s += time.time() - self.validation_started

        def on_epoch_end(self, epoch, logs=None):
            self.clock.ended_at = time.time()
            _log_epoch(
                rank, epoch + 1, epochs, logs or {}, self.clock.ended_at - self.epoch_started
            )

    return Progress()


def _log_epoch(rank: int, epoch: int, epochs: int, logs: dict[str, float], seconds: float) -> None:
    """One progress line per worker and epoch: in a Spark task, to the executor's stderr."""
    logger.info(
        "worker %d epoch %d/%d: loss %.4f, accuracy %.4f, val_accuracy %.4f (%.1f s)",
        rank,
        epoch,
        epochs,
        logs.get("loss", float("nan")),
        logs.get("accuracy", float("nan")),
        logs.get("val_accuracy", float("nan")),
        seconds,
    )
