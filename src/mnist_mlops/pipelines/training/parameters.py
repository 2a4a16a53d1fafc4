"""The ``training`` parameters (``conf/base/parameters_training.yml``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from mnist_mlops.config.parameters import Parameters, Section, plus_joined
from mnist_mlops.pipelines.training.fit import COMMUNICATIONS
from mnist_mlops.pipelines.training.model import ARCHITECTURES, PRECISIONS
from mnist_mlops.spark.strategies import STRATEGIES

# Literals built from the one tuple of names each: pydantic reads them at run time; mypy only
# takes literal values written out, hence the ignores.
Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]
Architecture = Literal[ARCHITECTURES]  # type: ignore[valid-type]


class Hyperparameters(Parameters):
    """The same for every strategy: they differ in how they run, not in what they learn."""

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)  # global: split across the workers of a distributed run
    learning_rate: float = Field(gt=0)  # Adam's peak rate
    warmup_fraction: float = Field(ge=0, lt=1)  # of the run's steps
    dropout: float = Field(ge=0, lt=1)
    # Augmentation; 0 turns each off.
    shift_px: int = Field(ge=0, le=14)
    rotation_deg: float = Field(ge=0, le=180)
    zoom: float = Field(ge=0, lt=1)
    # Strokes and focus as pictures reach the model: the fraction of images changed by each.
    thicken: float = Field(ge=0, le=1)
    thin: float = Field(ge=0, le=1)
    low_resolution: float = Field(ge=0, le=1)
    blur: float = Field(ge=0, le=1)
    label_smoothing: float = Field(ge=0, lt=1)
    ema_momentum: float = Field(ge=0, lt=1)  # 0 = no moving average of the weights
    precision: Literal[PRECISIONS]  # type: ignore[valid-type]  # weights are float32 always
    seed: int


class Slots(Parameters):
    """A distributed run's Spark tasks."""

    num_slots: int = Field(ge=1)


class CustomStrategy(Slots):
    """The custom strategy's tasks and collective communication."""

    communication: Literal[COMMUNICATIONS]  # type: ignore[valid-type]


class TrainingParameters(Section):
    """Which strategies train which architectures, and how."""

    section = "training"

    # default: architecture and hyperparameters below; tuned: the best completed trial of the
    # study tuning.study_name (kedro run --pipeline tune) in their place.
    recipe: Literal["default", "tuned"]
    strategies: Annotated[list[Strategy], BeforeValidator(plus_joined), Field(min_length=1)]
    architecture: Architecture  # what single_node, local and distributed train
    architectures: Annotated[  # what the custom strategy trains, side by side
        list[Architecture], BeforeValidator(plus_joined), Field(min_length=1)
    ]
    use_gpu: bool
    timeout_s: float = Field(gt=0)
    hyperparameters: Hyperparameters
    distributed: Slots
    custom: CustomStrategy
