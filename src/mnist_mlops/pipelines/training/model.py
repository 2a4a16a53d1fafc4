"""The CNN architectures, built and compiled the same way for every strategy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ARCHITECTURES = ("vgg_cnn", "lean_cnn", "original_cnn")
PRECISIONS = ("auto", "float32", "bfloat16")
# Training steps per call of the compiled training function: one Python round trip per 8
# batches. Two one-core Spark workers at global batch 128 trained at 0.53x of a plain fit with 1
# and 0.72x with 8 (measured on local-cluster[2,1,2048]); the progress callback then comes once
# per 8 steps. Training only: tf_keras's predict fails ("Empty batch_outputs") on fewer batches
# than steps per execution, so the models the driver holds, saves and evaluates are compiled
# with 1 (build_model's default).
STEPS_PER_EXECUTION = 8


def build_model(
    architecture: str,
    hyperparameters: dict[str, Any],
    total_steps: int,
    steps_per_execution: int = 1,
    precision: str = "float32",
):
    """Build and compile a tf_keras CNN that takes raw 0-255 pixels (N, 28, 28).

    The rescaling to 0-1 is the model's first layer, so whoever calls the model (a Spark worker,
    the scoring server, a client) sends the pixels as they are. It is trained on one-hot labels
    (see :func:`one_hot`) so that the loss can smooth them.

    Args:
        architecture: ``vgg_cnn`` (conv32-conv32-pool-conv64-conv64-pool-dense128, the default),
            ``lean_cnn`` (conv32-pool-conv64-pool-dense128, ~2x cheaper per image) or
            ``original_cnn`` (the original notebooks' three unpooled conv32 layers).
        hyperparameters: ``dropout``, ``label_smoothing``, ``ema_momentum`` and the schedule's
            ``learning_rate`` and ``warmup_fraction``.
        total_steps: optimizer steps of the whole run, for the learning-rate schedule.
        precision: ``float32``, ``bfloat16`` to compute in bfloat16 (mixed precision: the
            weights and the output layer stay float32, so the weights load into a float32
            model), or ``auto`` (see :func:`resolve_precision`).
    """
    import tensorflow as tf

    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    model = _network(architecture, hyperparameters, resolve_precision(precision))
    model.compile(
        optimizer=_optimizer(hyperparameters, total_steps),
        loss=tf.keras.losses.CategoricalCrossentropy(
            label_smoothing=hyperparameters["label_smoothing"]
        ),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def _network(architecture: str, hyperparameters: dict[str, Any], precision: str):
    """The architecture's layers, from raw pixels to the ten digits' probabilities."""
    import tensorflow as tf

    layers = tf.keras.layers
    # Layers take the global dtype policy when they are made.
    with _layer_precision(precision):
        return tf.keras.Sequential(
            [
                tf.keras.Input(shape=(28, 28), name="image"),
                layers.Reshape((28, 28, 1)),
                layers.Rescaling(1.0 / 255),
                *_BODIES[architecture](hyperparameters),
                # float32 whatever the precision: a softmax in bfloat16 loses the small ones.
                layers.Dense(10, activation="softmax", dtype="float32", name="probs"),
            ]
        )


def one_hot(labels):
    """Digit labels (N,) as the one-hot rows (N, 10) the model's loss takes."""
    import tensorflow as tf

    return tf.one_hot(labels, 10)


def resolve_precision(precision: str, gpu: bool = False) -> str:
    """``auto`` as ``bfloat16`` on a CPU with bfloat16 instructions, else ``float32``.

    On a CPU with AVX512-BF16 (or AMX) the VGG network trained 1.6x faster in bfloat16 here, as
    accurate (docs/training.md); elsewhere bfloat16 is emulated and slower. GPUs stay float32.
    """
    if precision != "auto":
        return precision
    return "bfloat16" if not gpu and _cpu_has_bfloat16() else "float32"


def _cpu_has_bfloat16(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        cpuinfo = cpuinfo_path.read_text()
    except OSError:  # not Linux
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


@contextmanager
def _layer_precision(precision: str) -> Iterator[None]:
    """tf_keras's global dtype policy set to ``precision`` (mixed) while layers are made."""
    import tensorflow as tf

    mixed = tf.keras.mixed_precision
    previous = mixed.global_policy()
    mixed.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        yield
    finally:
        mixed.set_global_policy(previous)


def _vgg_body(hyperparameters: dict[str, Any]) -> list:
    """Two VGG-style pairs of 3x3 convolutions: 99.5% in 5 epochs where lean_cnn stops at 99.4%."""
    return [*_pooled_convolutions((32, 64), per_block=2), *_dense_head(hyperparameters)]


def _lean_body(hyperparameters: dict[str, Any]) -> list:
    """conv32-pool-conv64-pool-dense128: ~4x cheaper per image than the original, and better."""
    return [*_pooled_convolutions((32, 64), per_block=1), *_dense_head(hyperparameters)]


def _original_body(hyperparameters: dict[str, Any]) -> list:
    """The original notebooks' network: three unpooled conv32 layers."""
    import tensorflow as tf

    return [*_pooled_convolutions((32,), per_block=3), tf.keras.layers.Flatten()]


def _pooled_convolutions(widths: tuple[int, ...], per_block: int) -> list:
    """A block per width: ``per_block`` 3x3 ReLU convolutions, then a 2x2 max pooling."""
    import tensorflow as tf

    layers = tf.keras.layers
    return [
        layer
        for width in widths
        for layer in (
            *(layers.Conv2D(width, 3, activation="relu") for _ in range(per_block)),
            layers.MaxPooling2D(),
        )
    ]


def _dense_head(hyperparameters: dict[str, Any]) -> list:
    """Flattened features through 128 ReLU units, with dropout."""
    import tensorflow as tf

    layers = tf.keras.layers
    return [
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(hyperparameters["dropout"]),
    ]


_BODIES = {"vgg_cnn": _vgg_body, "lean_cnn": _lean_body, "original_cnn": _original_body}


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
