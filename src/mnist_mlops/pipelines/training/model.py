"""The CNN architectures, built and compiled the same way for every strategy."""

from __future__ import annotations

from typing import Any


def build_model(architecture: str, hyperparameters: dict[str, Any], total_steps: int):
    """Build and compile a tf_keras CNN that takes raw 0-255 pixels (N, 28, 28).

    The rescaling to 0-1 is the model's first layer, so whoever calls the model (a Spark worker,
    the scoring server, a client) sends the pixels as they are.

    Args:
        architecture: ``lean_cnn`` (conv32-pool-conv64-pool-dense128, the default) or
            ``original_cnn`` (the original notebooks' three unpooled conv32 layers).
        hyperparameters: ``learning_rate`` (peak of a cosine decay) and ``dropout``.
        total_steps: optimizer steps of the whole run, for the learning-rate schedule.
    """
    import tensorflow as tf

    layers = tf.keras.layers
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    body = [
        tf.keras.Input(shape=(28, 28), name="image"),
        layers.Reshape((28, 28, 1)),
        layers.Rescaling(1.0 / 255),
    ]
    if architecture == "lean_cnn":
        body += [
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(hyperparameters["dropout"]),
        ]
    else:
        body += [
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
        ]
    model = tf.keras.Sequential([*body, layers.Dense(10, activation="softmax", name="probs")])
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        hyperparameters["learning_rate"], decay_steps=max(total_steps, 1)
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


ARCHITECTURES = ("lean_cnn", "original_cnn")
