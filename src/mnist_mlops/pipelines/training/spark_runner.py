"""Runs a training function with spark-tensorflow-distributor and surfaces worker errors."""

from __future__ import annotations

import os
import re
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

_BEGIN, _END = "<<mnist-worker-error>>", "<</mnist-worker-error>>"
_WORKER_ERROR = re.compile(re.escape(_BEGIN) + r"(.*?)" + re.escape(_END), re.DOTALL)
_PYTHON_ERROR = re.compile(r"^(\w+(?:Error|Exception|Interrupt): .*)$", re.MULTILINE)
_SPARK_REASON = re.compile(r"Job aborted due to stage failure: (.*)$", re.MULTILINE)
_EXECUTOR_LOST = re.compile(
    r"ExecutorLostFailure \(executor (\S+) exited[^)]*\) Reason: (.*?)\)?$", re.M
)


class DistributedTrainingError(RuntimeError):
    """A Spark training job failed; the message carries the failing worker's own error."""


class _ReportingTrainFn:
    """Wraps a training function so that a worker's exception reaches the driver readable."""

    def __init__(self, train_fn: Callable[..., Any]) -> None:
        self.train_fn = train_fn

    def __call__(self, **kwargs: Any) -> Any:
        try:
            return self.train_fn(**kwargs)
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc)[-6:])
            raise RuntimeError(
                f"{_BEGIN}{this_worker()} failed with {type(exc).__name__}: {exc}\n{detail}{_END}"
            ) from exc


def this_worker() -> str:
    """Which worker this is: its rank (the Spark partition), its executor and its process.

    The driver learns none of it from a failed barrier stage ("barrier task ResultTask(0, 1)
    finished unsuccessfully"), so the worker says it in its error.
    """
    from pyspark import BarrierTaskContext, TaskContext

    process = f"pid {os.getpid()} on {socket.gethostname()}"
    task = TaskContext.get()
    if task is None:  # local mode: the function runs in the driver
        return f"worker in the driver ({process})"
    rank = task.partitionId()
    # A Python worker is told no executor id; a standalone executor's log URL carries it.
    found = re.search(r"[?&]executorId=([^&]+)", os.environ.get("SPARK_LOG_URL_STDERR", ""))
    executor = f"executor {found.group(1)}" if found else "executor"
    if isinstance(task, BarrierTaskContext):  # as the runner's tasks are
        executor += f" at {task.getTaskInfos()[rank].address}"
    return f"worker {rank} ({executor}, {process})"


def watchdog(
    context: Any, timeout_s: float, description: str = "distributed training"
) -> threading.Timer:
    """A started timer that cancels the Spark jobs this thread starts next (a job group of
    their own) after ``timeout_s`` seconds."""
    group = f"mnist-training-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, description, interruptOnCancel=True)
    timer = threading.Timer(timeout_s, context.cancelJobGroup, [group])
    timer.start()
    return timer


def spark_failure(exc: Exception) -> str:
    """Why Spark failed a training job that no worker's exception explains."""
    text = str(exc)
    lost = _EXECUTOR_LOST.search(text)
    if lost:
        return f"executor {lost.group(1)} was lost ({lost.group(2)})"
    # The worker failed outside the training function (e.g. unpickling it): quote the last
    # Python exception of its traceback, else Spark's reason for aborting the job.
    python_errors = _PYTHON_ERROR.findall(text)
    reasons = _SPARK_REASON.findall(text)
    return (python_errors or reasons or [text.splitlines()[0]])[-1].strip()


def run_with_runner(
    train_fn: Callable[..., Any],
    *,
    num_slots: int,
    local_mode: bool,
    use_gpu: bool,
    custom_strategy: bool,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``train_fn(**kwargs)`` through ``MirroredStrategyRunner`` and return the chief's result.

    A distributed run that has not finished after ``timeout_s`` seconds is cancelled: a worker
    that died or hangs in a collective must not hang the pipeline.

    Raises:
        DistributedTrainingError: naming the worker (rank, executor, pid) with its exception and
            the end of its traceback when a worker raised, Spark's reason when the job failed
            otherwise (naming a lost executor), or the timeout.
    """
    from spark_tensorflow_distributor import MirroredStrategyRunner

    runner = MirroredStrategyRunner(
        num_slots=num_slots,
        local_mode=local_mode,
        use_gpu=use_gpu,
        use_custom_strategy=custom_strategy,
    )
    context = runner.sc
    timer = watchdog(context, timeout_s) if timeout_s and not local_mode else None
    try:
        return runner.run(_ReportingTrainFn(train_fn), **kwargs)
    except Exception as exc:
        _raise_training_error(
            exc, timed_out=timer is not None and not timer.is_alive(), timeout_s=timeout_s
        )
    finally:
        if timer is not None:
            timer.cancel()
            context.setLocalProperty("spark.jobGroup.id", None)


def _raise_training_error(exc: Exception, timed_out: bool, timeout_s: float | None) -> NoReturn:
    """``exc``, a failed ``runner.run``, as a :class:`DistributedTrainingError` saying why: the
    timeout, else the worker's own error, else Spark's reason."""
    if timed_out:
        raise DistributedTrainingError(
            f"Distributed training did not finish within training.timeout_s={timeout_s} s "
            "and was cancelled"
        ) from None
    found = _WORKER_ERROR.search(str(exc))
    if found:
        raise DistributedTrainingError(found.group(1).strip()) from None
    raise DistributedTrainingError(f"Spark training job failed: {spark_failure(exc)}") from exc
