"""What a strategy node produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("single_node", "local", "distributed", "custom")


@dataclass
class TrainingResult:
    """A trained model with its learning curves, evaluation and timing.

    ``metrics`` holds ``validation_accuracy``, ``test_accuracy``, ``test_loss``,
    ``wall_time_s`` (whole node), ``startup_s`` (node start to first finished step) and
    ``images_per_s`` (training throughput after the first step).
    """

    strategy: str
    architecture: str
    model: Any
    history: dict[str, list[float]]
    metrics: dict[str, float]
    params: dict[str, Any]
    worker_pids: list[int] = field(default_factory=list)
    run_id: str | None = None


@dataclass
class SkippedStrategy:
    """Stands for a strategy left out of ``training.strategies``."""

    strategy: str


def selected_strategies(strategies: list[str] | str) -> list[str]:
    """Parse ``training.strategies``: a YAML list, or names joined by ``+`` on the command line.

    Raises:
        ValueError: for an empty selection or an unknown name.
    """
    names = strategies.split("+") if isinstance(strategies, str) else list(strategies)
    names = [name.strip() for name in names if name.strip()]
    unknown = sorted(set(names) - set(STRATEGIES))
    if unknown or not names:
        raise ValueError(
            f"training.strategies={strategies!r}: choose one or more of {list(STRATEGIES)}"
            + (f"; unknown: {unknown}" if unknown else "")
        )
    return names
