"""The ``tuning`` parameters (``conf/base/parameters_tuning.yml``): budget, pruner, search space."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from mnist_mlops.config.parameters import Parameters, Section, plus_joined
from mnist_mlops.pipelines.training.parameters import Architecture, Hyperparameters

Number = TypeVar("Number", int, float)


def _span_input(value: Any) -> Any:
    """A YAML list (or ``a+b`` on the command line) is a list of choices, one value a fixed
    choice (``--params tuning.space.epochs=2``); a mapping is a range."""
    value = plus_joined(value)
    if isinstance(value, int | float):
        value = [value]
    return {"choices": value} if isinstance(value, list | tuple) else value


class Span(Parameters, Generic[Number]):
    """One searched hyperparameter: a range ``{low, high, log}`` or a list of choices."""

    low: Number | None = None
    high: Number | None = None
    log: bool = False  # sample the range on a log scale (learning rates)
    choices: list[Number] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Span:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("an empty list of choices")
            if self.low is not None or self.high is not None:
                raise ValueError("either a list of choices or a range {low, high}, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give a list of choices)")
        if self.low > self.high:
            raise ValueError(f"an inverted range: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range must start above 0 (low {self.low})")
        return self

    @property
    def values(self) -> list[Number]:
        """The values a trial can take at the ends: the choices, or low and high."""
        if self.choices is not None:
            return list(self.choices)
        return [end for end in (self.low, self.high) if end is not None]  # both, once valid

    @model_serializer
    def _as_written(self) -> Any:
        # As parameters_tuning.yml writes it: the space a study was created with is compared
        # with this form, and the parameter files round-trip through the model.
        if self.choices is not None:
            return list(self.choices)
        return {"low": self.low, "high": self.high, "log": self.log}


IntSpan = Annotated[Span[int], BeforeValidator(_span_input)]
FloatSpan = Annotated[Span[float], BeforeValidator(_span_input)]


class SearchSpace(Parameters):
    """What a trial samples; every other hyperparameter is the training recipe's."""

    architecture: Annotated[list[Architecture], BeforeValidator(plus_joined), Field(min_length=1)]
    learning_rate: FloatSpan
    batch_size: IntSpan
    epochs: IntSpan
    shift_px: IntSpan
    rotation_deg: FloatSpan
    zoom: FloatSpan
    thicken: FloatSpan
    blur: FloatSpan
    low_resolution: FloatSpan
    thin: FloatSpan
    label_smoothing: FloatSpan
    dropout: FloatSpan

    @field_validator("*", mode="after")
    @classmethod
    def _within_the_recipe_bounds(cls, span: Any, info: ValidationInfo) -> Any:
        """Each end of a span must be a valid ``training.hyperparameters`` value, so that no
        trial fails on a value the training recipe refuses (a dropout of 1, 0 epochs)."""
        if not isinstance(span, Span):
            return span
        field = Hyperparameters.model_fields[str(info.field_name)]
        # The hyperparameter's own type and constraints, rebuilt at run time (mypy cannot).
        bounds: TypeAdapter[Any] = TypeAdapter(Annotated[field.annotation, *field.metadata])  # type: ignore[arg-type]
        for value in span.values:
            try:
                bounds.validate_python(value)
            except ValidationError as exc:
                raise ValueError(f"{value}: {exc.errors()[0]['msg']}") from None
        return span


class Pruner(Parameters):
    """Which trials stop early: after each epoch, on validation accuracy."""

    kind: Literal["median", "successive_halving", "none"]
    startup_trials: int = Field(ge=0)  # median: trials that complete before any is pruned
    warmup_epochs: int = Field(ge=0)  # median: epochs every trial trains before it may be pruned


class TuningParameters(Section):
    """A study over the training recipe, its budget and how its trials run on Spark."""

    section = "tuning"

    study_name: str = Field(min_length=1)
    # The budget of one run: no trial starts after either is reached (null: no limit).
    n_trials: int | None = Field(ge=1)
    budget_minutes: float | None = Field(gt=0)
    parallel_trials: int = Field(ge=0)  # trials at once; 0 = one per Spark task slot
    trial_timeout_minutes: float = Field(gt=0)  # a trial still running then is failed
    sampler_seed: int | None
    pruner: Pruner
    space: SearchSpace

    @field_validator("budget_minutes", mode="after")
    @classmethod
    def _a_budget(cls, minutes: float | None, info: ValidationInfo) -> float | None:
        if minutes is None and info.data.get("n_trials") is None:
            raise ValueError("no budget: set tuning.n_trials or tuning.budget_minutes (or both)")
        return minutes
