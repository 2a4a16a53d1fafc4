"""Typed parameters: the base of every section's pydantic model, and its error messages.

Each pipeline declares the model of its section in ``pipelines/<name>/parameters.py`` and
annotates its nodes' ``params:<section>`` argument with it; Kedro's parameter validation
(``kedro.validation``) then validates and instantiates the section before any node runs. What
Kedro leaves out (sections no selected node reads, unknown sections) is checked by
:func:`check_sections`, called from ``hooks.ParameterHooks``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from kedro.validation import ParameterValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

# Sections no node reads: checked by their own command at start-up (``kedro serve``).
SECTIONS_READ_BY_COMMANDS = ("serving",)


class Parameters(BaseModel):
    """A block of parameters: an unknown key is an error, and nodes cannot change a value."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Section(Parameters):
    """A top-level section of ``conf/*/parameters_*.yml`` (``training``, ``deployment``, ...).

    A wrong value or unknown key raises one :class:`ParameterValidationError` naming each key in
    full (``training.hyperparameters.epochs``) and, for an unknown key, the closest valid one
    anywhere in the section.
    """

    section: ClassVar[str]

    @model_validator(mode="wrap")
    @classmethod
    def _explain_errors(cls, data: Any, handler: Any) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            # Not a ValueError: pydantic would wrap it again, input dump included.
            lines = [_explain(cls, error) for error in exc.errors()]
            raise ParameterValidationError("; ".join(lines)) from None


def plus_joined(value: Any) -> Any:
    """A list parameter from the command line: ``a+b`` stands for ``[a, b]``.

    Kedro's ``--params`` splits on every comma, so list items are joined with ``+`` there.
    """
    if isinstance(value, str):
        return [name.strip() for name in value.split("+") if name.strip()]
    return value


def _paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key of ``model``, nested blocks and their keys included."""
    for name, field in model.model_fields.items():
        yield (*prefix, name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _paths(field.annotation, (*prefix, name))


def closest_key(model: type[BaseModel], unknown: tuple[str, ...]) -> tuple[str, ...] | None:
    """The valid key of ``model`` whose name is nearest ``unknown``'s, in any block.

    ``("epochs",)`` in the training section finds ``("hyperparameters", "epochs")``; among keys
    with equally near names, the one sharing more of ``unknown``'s parents wins.
    """
    name = unknown[-1]

    def score(path: tuple[str, ...]) -> tuple[float, int]:
        shared = sum(1 for a, b in zip(path[:-1], unknown[:-1], strict=False) if a == b)
        return difflib.SequenceMatcher(None, name, path[-1]).ratio(), shared

    best = max(_paths(model), key=score, default=None)
    return best if best is not None and score(best)[0] >= 0.6 else None


def _explain(section: type[Section], error: Mapping[str, Any]) -> str:
    """One line for one of pydantic's errors: the key in full, then what is wrong with it."""
    location = [str(part) for part in error["loc"] if not isinstance(part, int)]
    key = ".".join([section.section, *location])
    if error["type"] == "missing":
        return f"{key} is missing"
    if error["type"] != "extra_forbidden":
        return f"{key}={error['input']!r}: {error['msg']}"
    closest = closest_key(section, tuple(location))
    hint = f"did you mean {section.section}.{'.'.join(closest)}?" if closest else ""
    return f"{key} is not a parameter; {hint or 'see conf/base/parameters_*.yml'}"


def check_sections(parameters: Mapping[str, Any], models: Mapping[str, type[Section]]) -> None:
    """Check what Kedro's validation leaves out: unknown sections, and sections no selected node
    reads (``--params training...`` with ``--pipeline deploy``), validated by their model.

    Raises:
        ParameterValidationError: naming every wrong section and key, and the closest valid ones.
    """
    known = [*models, *SECTIONS_READ_BY_COMMANDS]
    errors = []
    for name, value in parameters.items():
        if name not in known:
            closest = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {closest[0]}?" if closest else f"the sections are {known}"
            errors.append(f"{name} is not a parameter section; {hint}")
        elif name in models and isinstance(value, Mapping):
            try:
                models[name].model_validate(value)
            except ParameterValidationError as exc:
                errors.append(str(exc))
    if errors:
        raise ParameterValidationError("; ".join(errors))


def section_values(parameters: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A parameter section as a dict: its model validated, or as configured when no loaded
    pipeline reads it."""
    value = parameters.get(name, {})
    return value.model_dump() if isinstance(value, BaseModel) else dict(value)
