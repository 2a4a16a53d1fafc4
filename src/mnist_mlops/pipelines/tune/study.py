"""The study: created or resumed in its storage, sampled, and read back as a recipe."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from mnist_mlops.datasets.study_storage_dataset import StudyStorage
from mnist_mlops.pipelines.tune.parameters import Pruner, SearchSpace, Span, TuningParameters

logger = logging.getLogger(__name__)

SPACE_ATTR = "mnist.search_space"  # the study's space, as parameters_tuning.yml writes it
OBJECTIVE = "val_accuracy"  # of the last epoch; the test set is never read while searching


class StudyError(ValueError):
    """The study cannot be run or read as asked (another search space, no completed trial)."""


@dataclass(frozen=True)
class StudyHandle:
    """What the trials need to reach the study: picklable, no Optuna object."""

    name: str
    storage: StudyStorage
    pruner: Pruner
    sampler_seed: int | None = None

    def load(self) -> Any:
        """The study with its pruner (Optuna keeps no pruner in the storage)."""
        import optuna

        return optuna.load_study(
            study_name=self.name, storage=self.storage.open(), pruner=make_pruner(self.pruner)
        )


def make_pruner(pruner: Pruner) -> Any:
    import optuna

    if pruner.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_epochs
        )
    if pruner.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(tuning: TuningParameters, storage: StudyStorage) -> StudyHandle:
    """Create the study, or resume it if it exists with the same search space.

    Raises:
        StudyStorageError: the storage cannot be opened (no password in the message).
        StudyError: the study exists with another search space.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the driver logs its own progress
    study = optuna.create_study(
        study_name=tuning.study_name,
        storage=storage.open(),
        direction="maximize",
        load_if_exists=True,
    )
    space = tuning.space.model_dump(mode="json")
    created_with = study.user_attrs.get(SPACE_ATTR)
    if created_with is None:
        study.set_user_attr(SPACE_ATTR, space)
    elif created_with != space:
        raise StudyError(_another_space(tuning.study_name, created_with, space))
    done = len(study.get_trials(deepcopy=False))
    logger.info(
        "Study %s in %s: %s",
        tuning.study_name,
        storage.display,
        f"resumed with {done} trial(s)" if done else "new",
    )
    return StudyHandle(tuning.study_name, storage, tuning.pruner, tuning.sampler_seed)


def _another_space(name: str, before: dict[str, Any], now: dict[str, Any]) -> str:
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    detail = "; ".join(
        f"tuning.space.{key}: {json.dumps(before.get(key))} then, {json.dumps(now.get(key))} now"
        for key in changed
    )
    return (
        f"Study {name!r} was created with another search space ({detail}): its trials would not "
        "compare. Restore that space, or start a new study with --params tuning.study_name=NAME"
    )


def sample(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """The trial's values of every searched hyperparameter (architecture included)."""
    values: dict[str, Any] = {
        "architecture": trial.suggest_categorical("architecture", space.architecture)
    }
    for name in SearchSpace.model_fields:
        span = getattr(space, name)
        if isinstance(span, Span):
            values[name] = _suggest(trial, name, span)
    return values


def _suggest(trial: Any, name: str, span: Span) -> Any:
    if span.choices is not None:
        return trial.suggest_categorical(name, span.choices)
    if isinstance(span.low, int) and isinstance(span.high, int):
        return trial.suggest_int(name, span.low, span.high, log=span.log)
    return trial.suggest_float(name, span.low, span.high, log=span.log)


def best_trial(name: str, storage: StudyStorage) -> Any:
    """The best completed trial of study ``name`` (a ``FrozenTrial``).

    Raises:
        StudyError: no such study, or none of its trials completed.
    """
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage.open())
    except KeyError:
        raise StudyError(
            f"No study {name!r} in {storage.display}: run `kedro run --pipeline tune` first"
        ) from None
    try:
        return study.best_trial
    except ValueError:
        raise StudyError(
            f"Study {name!r} in {storage.display} has no completed trial yet: run "
            "`kedro run --pipeline tune` (or a longer budget) first"
        ) from None
