"""Cost of preparing a picture: p50 per 300 x 300 JPEG against the 3 ms target.

    .venv/bin/python benchmarks/preprocessing.py [--onnx model.onnx]

Every picture of the tuning set is re-encoded as a 300 x 300 JPEG (quality 85) and prepared
one request at a time on this thread, as the served model's ``prepare`` does: its candidate
readings found, then the likeliest kept. With ``--onnx`` (an exported CNN, e.g. the
``onnx_model`` artifact of a logged model) the model scores the candidates, as when served;
without, the first candidate is kept and the model's share is left out. Prints the median and
p90 of wall-clock and of this thread's CPU time (on a shared machine, CPU time is the cost;
wall time includes waiting for a core). benchmarks/serving.py prints the same figures before
its servers.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mnist_mlops.datasets import PictureSetDataset
from mnist_mlops.serving.pyfunc import MnistDigitModel, to_pixels

LABELS = Path(__file__).resolve().parents[1] / "data" / "01_raw" / "photos" / "labels.csv"
TARGET_MS = 3.0


def jpegs_300() -> list[str]:
    """The tuning set as 300 x 300 JPEGs, base64 as a request carries them."""
    encoded = []
    for raw in PictureSetDataset(filepath=str(LABELS)).load()["image"]:
        buffer = io.BytesIO()
        with Image.open(io.BytesIO(raw)) as image:
            image.convert("RGB").resize((300, 300)).save(buffer, format="JPEG", quality=85)
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return encoded


def cost_ms(
    pictures: list[str], score: Callable[[np.ndarray], np.ndarray], repeats: int = 3
) -> dict[str, float]:
    """Median over repeats of the p50 and p90, wall and CPU, in ms per picture."""
    runs = []
    for _ in range(repeats):
        wall, cpu = [], []
        for picture in pictures:
            request = pd.DataFrame({"image": [picture]})
            started, started_cpu = time.perf_counter(), time.thread_time()
            with contextlib.suppress(ValueError):  # main's preprocessing refuses "no digit"
                to_pixels(request, score)
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


def _first_candidate(pixels: np.ndarray) -> np.ndarray:
    """A stand-in for the model that keeps a picture's first candidate (at no cost)."""
    return np.tile(np.linspace(1, 0, len(pixels))[:, None], (1, 10))


def report(onnx: str | None = None) -> None:
    pictures = jpegs_300()
    score = _first_candidate
    if onnx:
        model = MnistDigitModel()
        model.load(onnx)
        score = model.probabilities
    figures = cost_ms(pictures, score)
    chooser = "the model choosing" if onnx else "no model"
    print(f"preparing {len(pictures)} pictures as 300 x 300 JPEGs, {chooser} (p50 <= 3 ms):")
    for key, value in figures.items():
        print(f"  {key:14} {value:7.2f}   {value / TARGET_MS:5.2f}x of the target")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="an exported CNN: the model scores the candidates")
    report(parser.parse_args().onnx)
