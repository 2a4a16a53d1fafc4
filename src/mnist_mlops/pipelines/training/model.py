"""The CNN architectures, built and compiled the same way for every strategy."""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("lean_cnn", "original_cnn")
# Training steps per call of the compiled training function: one Python round trip per 8
# batches. Two one-core Spark workers at global batch 128 trained at 0.53x of a plain fit with 1
# and 0.72x with 8 (DESIGN.md); the progress callback then comes once per 8 steps. Training only:
# tf_keras's predict fails ("Empty batch_outputs") on fewer batches than steps per execution, so
# the models the driver holds, saves and evaluates are compiled with 1 (build_model's default).
STEPS_PER_EXECUTION = 8


def build_model(
    architecture: str,
    hyperparameters: dict[str, Any],
    total_steps: int,
    steps_per_execution: int = 1,
):
    """Build and compile a tf_keras CNN that takes raw 0-255 pixels (N, 28, 28).

    The rescaling to 0-1 is the model's first layer, so whoever calls the model (a Spark worker,
    the scoring server, a client) sends the pixels as they are. It is trained on one-hot labels
    (see :func:`one_hot`) so that the loss can smooth them.

    Args:
        architecture: ``lean_cnn`` (conv32-pool-conv64-pool-dense128, the default) or
            ``original_cnn`` (the original notebooks' three unpooled conv32 layers).
        hyperparameters: ``dropout``, ``label_smoothing``, ``ema_momentum`` and the schedule's
            ``learning_rate`` and ``warmup_fraction``.
        total_steps: optimizer steps of the whole run, for the learning-rate schedule.
    """
    import tensorflow as tf

    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    layers = tf.keras.layers
    body = _lean_body(hyperparameters) if architecture == "lean_cnn" else _original_body()
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(28, 28), name="image"),
            layers.Reshape((28, 28, 1)),
            layers.Rescaling(1.0 / 255),
            *body,
            layers.Dense(10, activation="softmax", name="probs"),
        ]
    )
    model.compile(
        optimizer=_optimizer(hyperparameters, total_steps),
        loss=tf.keras.losses.CategoricalCrossentropy(
            label_smoothing=hyperparameters["label_smoothing"]
        ),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def one_hot(labels):
    """Digit labels (N,) as the one-hot rows (N, 10) the model's loss takes."""
    import tensorflow as tf

    return tf.one_hot(labels, 10)


def _lean_body(hyperparameters: dict[str, Any]) -> list:
    """conv32-pool-conv64-pool-dense128: ~4x cheaper per image than the original, and better."""
    import tensorflow as tf

    layers = tf.keras.layers
    return [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(hyperparameters["dropout"]),
    ]


def _original_body() -> list:
    """The original notebooks' network: three unpooled conv32 layers."""
    import tensorflow as tf

    layers = tf.keras.layers
    return [
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
    ]


def _optimizer(hyperparameters: dict[str, Any], total_steps: int):
    """Adam on the schedule, keeping a moving average of the weights if ``ema_momentum`` > 0.

    The average replaces the weights when fit ends. It spans about 1 / (1 - momentum) steps:
    capped to the last tenth of the run, so that a short run (a test, a quick try) is not left
    near its initial weights.
    """
    import tensorflow as tf

    ema = min(hyperparameters["ema_momentum"], max(0.0, 1 - 10 / max(total_steps, 1)))
    return tf.keras.optimizers.Adam(
        _schedule(hyperparameters, total_steps), use_ema=ema > 0, ema_momentum=ema or 0.99
    )


def _schedule(hyperparameters: dict[str, Any], total_steps: int):
    """Linear warm-up to ``learning_rate`` over ``warmup_fraction`` of the run, then cosine to 0.

    The warm-up lets a large global batch start at a high rate without diverging.
    """
    import tensorflow as tf

    peak = hyperparameters["learning_rate"]
    total_steps = max(total_steps, 1)
    warmup = int(hyperparameters["warmup_fraction"] * total_steps)
    if not warmup:
        return tf.keras.optimizers.schedules.CosineDecay(peak, decay_steps=total_steps)
    return tf.keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total_steps - warmup, warmup_target=peak, warmup_steps=warmup
    )
