"""The training strategies and what a strategy node produces.

Below both the training pipeline and ``datasets/strategy_run_dataset.py``, which stores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
