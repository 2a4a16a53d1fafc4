"""Tuning benchmark: trials per hour with two trials at once vs one at a time, and the per-trial
overhead of launching a trial as a Spark job and keeping it in the study's storage.

    .venv/bin/python benchmarks/tuning.py [--images 3000] [--trials 6] [--repeats 3]

Every trial is the same tiny one (lean_cnn, 1 epoch, batch 128, one TensorFlow thread: the
space below has one value per hyperparameter) and pruning is off, so that both configurations
do the same work. Both run on one ``local[2]`` Spark session with the tune pipeline's own
scheduler and a journal-file study: ``--slots 1`` runs one trial at a time on one core, ``2``
two at once. The Python workers are warmed first (TensorFlow imported), as they are after a
study's first trials. Prints per configuration the median trials/hour and the ratio, and per
trial the medians of: the trial's own work in its worker (``fit_s``: data, model, epochs), the
CPU time of its process meanwhile (``cpu_s``: when ``fit_s`` grows with two at once and
``cpu_s`` does not, the trials waited for a core), the Spark job around it (driver's wall time
minus ``fit_s``), and the whole overhead (each slot's
time per trial minus ``fit_s``: the job, ask and tell in the storage, the executor's storage
reads and writes).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import click
import yaml

import mnist_mlops  # noqa: F401  (sets the TensorFlow environment first)
from mnist_mlops.datasets import ArrayBundleDataset, StudyStorage
from mnist_mlops.pipelines.data_prep.nodes import split_train_validation
from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters
from mnist_mlops.pipelines.training.parameters import TrainingParameters
from mnist_mlops.pipelines.tune import scheduler
from mnist_mlops.pipelines.tune.parameters import TuningParameters
from mnist_mlops.pipelines.tune.study import open_study
from mnist_mlops.pipelines.tune.tracking import TrialRuns
from mnist_mlops.spark.session import start_spark

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "01_raw" / "mnist"
FIXED_SPACE = {
    "architecture": ["lean_cnn"],
    "learning_rate": [0.003],
    "batch_size": [128],
    "epochs": [1],
    "shift_px": [2],
    "rotation_deg": [0.0],
    "zoom": [0.0],
    "thicken": [0.0],
    "blur": [0.0],
    "low_resolution": [0.0],
    "thin": [0.0],
    "label_smoothing": [0.0],
    "dropout": [0.3],
}


def _section(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf/base" / f"parameters_{name}.yml").read_text())[name]


def model_input(images: int, folder: Path):
    from mnist_mlops.datasets import IDXDataset

    raw = {
        f"{split}_{kind}": IDXDataset(
            filepath=str(RAW / f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz")
        ).load()
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for kind in ("images", "labels")
    }
    arrays = split_train_validation(
        raw, DataPrepParameters(validation_images=1000, max_train_images=images, seed=1)
    )
    dataset = ArrayBundleDataset(filepath=str(folder / "mnist.npz"))
    dataset.save(arrays)
    return dataset.load()


def study_run(
    context, bundle, folder: Path, slots: int, trials: int, precision: str
) -> dict[str, float]:
    """One fresh study of ``trials`` identical trials on ``slots`` slots: its figures."""
    tuning = TuningParameters.model_validate(
        {
            **_section("tuning"),
            "study_name": f"bench-{slots}-{time.time_ns()}",
            "n_trials": trials,
            "budget_minutes": None,
            "parallel_trials": slots,
            "pruner": {"kind": "none", "startup_trials": 0, "warmup_epochs": 0},
            "space": FIXED_SPACE,
        }
    )
    training = TrainingParameters.model_validate(_section("training"))
    handle = open_study(tuning, StudyStorage(journal=str(folder / "journal.log")))
    driver = scheduler.Study(
        handle=handle,
        tuning=tuning,
        recipe=training.hyperparameters.model_copy(update={"precision": precision}),
        bundle=bundle,
        runs=TrialRuns(None, tuning.study_name),
        budget=scheduler.Budget(trials, None),
    )
    started = time.perf_counter()
    scheduler.run_trials(context, driver, timeout_s=1800)
    elapsed = time.perf_counter() - started
    done = driver.optuna_study.get_trials(deepcopy=False)
    assert all(t.state.name == "COMPLETE" for t in done), [t.state for t in done]
    fit = statistics.median(t.user_attrs["fit_s"] for t in done)
    cpu = statistics.median(t.user_attrs["cpu_s"] for t in done)
    job = statistics.median(t.user_attrs["wall_s"] - t.user_attrs["fit_s"] for t in done)
    return {
        "trials_per_hour": 3600 * trials / elapsed,
        "fit_s": fit,
        "cpu_s": cpu,
        "job_overhead_s": job,
        "overhead_s": elapsed * slots / trials - fit,
    }


@click.command()
@click.option("--images", default=3000, show_default=True, help="Training images per trial.")
@click.option("--trials", default=6, show_default=True, help="Trials per study.")
@click.option("--repeats", default=3, show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="The trials' (auto: bfloat16 where the CPU has it, as the recipe).",
)
def main(images: int, trials: int, repeats: int, precision: str) -> None:
    settings = yaml.safe_load((ROOT / "conf/base/spark.yml").read_text())
    settings.update({"spark.master": "local[2]", "spark.app.name": "tuning-benchmark"})
    context = start_spark(settings).sparkContext
    context.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory() as folder:
        bundle = model_input(images, Path(folder))
        study_run(context, bundle, Path(folder), 2, 2, precision)  # warm both Python workers
        results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for repeat in range(repeats):
            for slots in (1, 2) if repeat % 2 == 0 else (2, 1):  # alternate the order
                run = study_run(context, bundle, Path(folder), slots, trials, precision)
                results[slots].append(run)
                print(f"repeat {repeat + 1} slots {slots}: {results[slots][-1]}", flush=True)
    print(
        f"\n{images} images, 1 epoch, {precision}, {trials} trials per study, medians of {repeats}:"
    )
    print(
        "| trials at once | trials/hour | fit_s | its CPU s | job overhead s | whole overhead s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for slots, runs in results.items():
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {slots} | {median['trials_per_hour']:.0f} | {median['fit_s']:.2f} | "
            f"{median['cpu_s']:.2f} | "
            f"{median['job_overhead_s']:.2f} | {median['overhead_s']:.2f} |"
        )
    ratios = [
        b["trials_per_hour"] / a["trials_per_hour"] for a, b in zip(*results.values(), strict=True)
    ]
    print(
        f"\n2 at once vs 1 at a time: {statistics.median(ratios):.2f}x (each repeat: "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + ")"
    )


if __name__ == "__main__":
    main()
