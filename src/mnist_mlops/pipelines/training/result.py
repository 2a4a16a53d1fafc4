"""What a strategy node produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mnist_mlops.pipelines.training.model import ARCHITECTURES

STRATEGIES = ("single_node", "local", "distributed", "custom")


@dataclass
class TrainingResult:
    """A trained model with its learning curves, evaluation and timing.

    ``metrics`` holds ``validation_accuracy``, ``test_accuracy``, ``test_loss``,
    ``wall_time_s`` (whole node), ``startup_s`` (node start to first finished step),
    ``train_s`` (training batches after the first), ``validation_s`` (per-epoch validation),
    ``teardown_s`` (last epoch's end to the driver holding the weights) and ``images_per_s``
    (training throughput over ``train_s``).
    """

    strategy: str
    architecture: str
    model: Any
    history: dict[str, list[float]]
    metrics: dict[str, float]
    params: dict[str, Any]
    worker_pids: list[int] = field(default_factory=list)
    run_id: str | None = None

    @property
    def label(self) -> str:
        """``strategy/architecture``: names the result in MLflow and in the comparison chart."""
        return f"{self.strategy}/{self.architecture}"


@dataclass
class SkippedStrategy:
    """Stands for a strategy left out of ``training.strategies``."""

    strategy: str


def selected_names(value: list[str] | str, choices: tuple[str, ...], parameter: str) -> list[str]:
    """Parse a list parameter: a YAML list, or names joined by ``+`` on the command line.

    Kedro's ``--params`` splits on every comma, so ``a+b`` stands for ``[a, b]`` there.

    Raises:
        ValueError: for an empty selection or an unknown name, naming the valid ones.
    """
    names = value.split("+") if isinstance(value, str) else list(value)
    names = [name.strip() for name in names if name.strip()]
    unknown = sorted(set(names) - set(choices))
    if unknown or not names:
        raise ValueError(
            f"{parameter}={value!r}: choose one or more of {list(choices)}"
            + (f"; unknown: {unknown}" if unknown else "")
        )
    return names


def selected_strategies(strategies: list[str] | str) -> list[str]:
    """Parse ``training.strategies`` (see :func:`selected_names`)."""
    return selected_names(strategies, STRATEGIES, "training.strategies")


def selected_architectures(architectures: list[str] | str) -> list[str]:
    """Parse ``training.architectures``, the models the custom strategy trains."""
    return selected_names(architectures, ARCHITECTURES, "training.architectures")
