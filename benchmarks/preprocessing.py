"""Cost of finding the digit in a picture: p50 per 300 x 300 JPEG against the 2 ms target.

    .venv/bin/python benchmarks/preprocessing.py

Every picture of the real-picture set is re-encoded as a 300 x 300 JPEG (quality 85) and read by
``digit_candidates`` on this thread; prints the median and p90 of wall-clock and of this
thread's CPU time (on a shared machine, CPU time is the cost; wall time includes waiting for a
core). benchmarks/serving.py prints the same figures before its servers.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_mlops.datasets import PictureSetDataset
from mnist_mlops.serving.preprocessing import InvalidInput, digit_candidates

LABELS = Path(__file__).resolve().parents[1] / "data" / "01_raw" / "photos" / "labels.csv"
TARGET_MS = 2.0


def jpegs_300() -> list[bytes]:
    """The real-picture set as 300 x 300 JPEGs."""
    encoded = []
    for raw in PictureSetDataset(filepath=str(LABELS)).load()["image"]:
        buffer = io.BytesIO()
        with Image.open(io.BytesIO(raw)) as image:
            image.convert("RGB").resize((300, 300)).save(buffer, format="JPEG", quality=85)
        encoded.append(buffer.getvalue())
    return encoded


def cost_ms(pictures: list[bytes], repeats: int = 3) -> dict[str, float]:
    """Median over repeats of the p50 and p90, wall and CPU, in ms per picture."""
    runs = []
    for _ in range(repeats):
        wall, cpu = [], []
        for picture in pictures:
            started, started_cpu = time.perf_counter(), time.thread_time()
            with contextlib.suppress(InvalidInput):  # "no digit found" is an answer too
                digit_candidates(picture)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
        runs.append(
            {
                "p50_wall_ms": float(np.median(wall)),
                "p90_wall_ms": float(np.percentile(wall, 90)),
                "p50_cpu_ms": float(np.median(cpu)),
                "p90_cpu_ms": float(np.percentile(cpu, 90)),
            }
        )
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def report() -> None:
    pictures = jpegs_300()
    figures = cost_ms(pictures)
    print(f"finding the digit, {len(pictures)} pictures as 300 x 300 JPEGs (target p50 <= 2 ms):")
    for key, value in figures.items():
        print(f"  {key:14} {value:7.2f}   {value / TARGET_MS:5.2f}x of the target")


if __name__ == "__main__":
    report()
