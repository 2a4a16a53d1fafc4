"""What the project silences in its log, each by logger (or warning) and message, and why.

Warnings the project itself caused are fixed where they arise (signatures and pinned
requirements on every logged model, the worker-pid gather inside a ``tf.function``, no CUDA
probe when ``training.use_gpu`` is false). What is left comes from dependencies doing what we
asked of them: each entry below names its source and message, so a new warning, or one of these
from somewhere else, still shows. ``install`` runs when the package is imported, in the driver
and in every Spark worker that unpickles a training function.
"""

from __future__ import annotations

import logging
import re
import warnings

# (logger name, message pattern): records that logger emits and that say nothing a user can act on.
_LOG_RECORDS = (
    # The `local` strategy asks the runner for local mode on purpose.
    ("MirroredStrategyRunner", r"MirroredStrategyRunner will run in local mode"),
    # spark-tensorflow-distributor 1.0 builds its strategy with a class TensorFlow deprecated;
    # the runner is what three of the four strategies are about, so it stays.
    ("tensorflow", r"_CollectiveAllReduceStrategyExperimental\.__init__ .* is deprecated"),
    # Each strategy's model is a new model whose predict function is traced once, when MLflow
    # checks its input example, and whose test function is traced for the driver's evaluation
    # (once per dataset shape): TensorFlow counts each kind
    # as one function retraced.
    ("tensorflow", r"calls to <function Model\.make_(predict|test)_function\.<locals>\."),
    # The servable pyfunc is pickled by value on purpose: the registered model loads and predicts
    # with nothing of this project installed (see serving/pyfunc.py).
    ("mlflow.pyfunc", r"Passing a Python object as `python_model` causes it to be serialized"),
    # kedro-mlflow's KedroPipelineModel (unused here) has an untyped `predict`: MLflow says so
    # when hooks.py imports the plugin's hook, under its own "once" filter, which overrides any
    # warnings filter; Kedro's logging captures it as a `py.warnings` record.
    ("py.warnings", r"Add type hints to the `predict` method"),
)

# (category, message pattern, module pattern): Python warnings of dependencies, by where they
# are raised.
_PYTHON_WARNINGS = (
    # omegaconf 2.4 deprecated register_new_resolver(); Kedro 1.7 and kedro-mlflow 2.0 still call
    # it for their own resolvers and for custom ones (our `oc.env`, the documented way).
    (UserWarning, r"register_new_resolver\(\) is deprecated", r"(kedro|kedro_mlflow)\."),
)


class _DropMessages(logging.Filter):
    """Drops the records of one logger whose message matches a pattern."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def install() -> None:
    """Install the filters above (idempotent: a second call adds nothing)."""
    for name, pattern in _LOG_RECORDS:
        logger = logging.getLogger(name)
        installed = [f.pattern.pattern for f in logger.filters if isinstance(f, _DropMessages)]
        if pattern not in installed:
            logger.addFilter(_DropMessages(pattern))
    for category, message, module in _PYTHON_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def tensorflow_environment(use_gpu: bool) -> dict[str, str]:
    """Environment variables for a process that runs TensorFlow.

    Without a GPU to use, TensorFlow is told to create CPU devices only, so it never calls
    ``cuInit`` (which logs an ERROR line on every machine without CUDA) rather than calling it and
    having its error muted; a GPU run probes as usual. ``TF_CPP_MIN_LOG_LEVEL=2`` keeps
    TensorFlow's C++ INFO and WARNING lines out and its errors in.
    """
    environment = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if not use_gpu:
        environment["TF_ENABLED_DEVICE_TYPES"] = "CPU"
    return environment
