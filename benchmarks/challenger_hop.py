"""What a canary answer costs over production's inline scoring, by how it is awaited.

    .venv/bin/python benchmarks/challenger_hop.py --onnx model.onnx [--repeats 3]

One single-image pixel request, scored by a real model (an exported CNN, e.g. the
``onnx_model`` artifact of a logged model) on a uvloop event loop, as a worker does:

- inline: production's way for pixel arrays (no thread);
- awaited: the challenger's threads, the answer awaited from the start (the loop goes back to
  polling and the answer wakes it), within ``challenger_timeout_s``;
- in place: the challenger's threads, the answer waited for in place for up to ``IN_PLACE_S``
  first (the server's way for a canary answer).

Each one request after another (a client on a kept-alive connection), 1 ms apart and 50 ms
apart (the thread is asleep when the request comes): the median wall time per request and
what each way adds to inline, medians of ``--repeats`` interleaved runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

from mnist_mlops.serving.app import _score, _timed_score
from mnist_mlops.serving.challenger import Challenger
from mnist_mlops.serving.model import LoadedModel, ModelFollower
from mnist_mlops.serving.parsing import parse_body
from mnist_mlops.serving.pyfunc import MnistDigitModel
from mnist_mlops.serving.settings import RolloutSettings

GAPS_S = (0.001, 0.05)


def challenger_of(onnx: str) -> tuple[Challenger, LoadedModel]:
    model = MnistDigitModel()
    model.load(onnx, {"onnx_intra_op_threads": 1, "onnx_allow_spinning": False})
    root = Path(tempfile.mkdtemp(prefix="challenger-hop-"))
    production = ModelFollower("", None, 30, root)
    challenger = Challenger(RolloutSettings(), "models:/m@canary", production, print, _score)
    return challenger, LoadedModel(model, "m", "2", "models:/m@canary", root)


async def median_us(way, gap_s: float, requests: int) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        await way()
        times.append(time.perf_counter() - started)
        await asyncio.sleep(gap_s)
    return statistics.median(times) * 1e6


async def run(onnx: str, repeats: int) -> None:
    challenger, loaded = challenger_of(onnx)
    raw = orjson.dumps({"inputs": [[[0] * 28] * 28]})
    parsed = parse_body(raw, "application/json", 4096 * 4096)

    async def inline() -> None:
        _timed_score(loaded.model, parsed)

    async def awaited() -> None:
        await challenger._run(loaded, parsed)

    async def in_place() -> None:
        await challenger._run(loaded, parsed, in_place=True)

    ways = {"inline": inline, "awaited": awaited, "in place": in_place}
    for gap_s in GAPS_S:
        results: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):
            for name, way in ways.items():
                results[name].append(await median_us(way, gap_s, 300 if gap_s < 0.01 else 60))
        medians = {name: statistics.median(runs) for name, runs in results.items()}
        print(f"requests {gap_s * 1000:g} ms apart:")
        for name, value in medians.items():
            print(f"  {name:9} {value:7.0f} us  (+{value - medians['inline']:4.0f} us)")
    challenger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", required=True, help="an exported CNN (.onnx)")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    uvloop.run(run(arguments.onnx, arguments.repeats))


if __name__ == "__main__":
    main()
