"""Start-up timing: one log line per phase, in seconds since the serving command started.

The command (``kedro serve``, or ``python -m mnist_mlops.serving.server``) notes when its
process started in ``MNIST_SERVING_STARTED_AT``; the workers inherit it, so that every line,
whichever process logs it, counts from the command: ``start-up: load 3.41 s``. Once a process
has finished starting, its phases log nothing (a version swapped in later loads quietly).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

ORIGIN = "MNIST_SERVING_STARTED_AT"
_finished = False


def mark_origin() -> None:
    """Note when this process started (in the environment its workers inherit), unless the
    process that started it already did."""
    os.environ.setdefault(ORIGIN, repr(time.time() - _process_age_s()))


def phase(name: str) -> None:
    """Log that the phase ``name`` ended now; nothing once this process has finished starting."""
    if not _finished and ORIGIN in os.environ:
        logger.info("start-up: %s %.2f s", name, time.time() - float(os.environ[ORIGIN]))


def finish(name: str) -> None:
    """Log the last phase of this process: later phases are not start-up."""
    global _finished
    phase(name)
    _finished = True


def _process_age_s() -> float:
    """Seconds since this process started: its start time in /proc (Linux), else 0."""
    try:
        stat = Path("/proc/self/stat").read_text()
        started_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
