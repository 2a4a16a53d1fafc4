"""The distributed input pipeline: no tf.data autotuning left to stall the end of ``fit``."""

import subprocess
import sys

import pytest

# In a process of its own: a MultiWorkerMirroredStrategy resets TensorFlow's eager context,
# which would invalidate the models other tests of this process hold.
PROBE = """
import numpy as np, tensorflow as tf
from tensorflow.python.eager import context
from mnist_mlops.pipelines.training import fit

context._reset_context()
strategy = tf.distribute.MultiWorkerMirroredStrategy()
if {fixed}:
    fit._device_datasets_without_autotuning()
    fit._device_datasets_without_autotuning()  # a second call must not wrap twice
arrays = {{"train_images": np.zeros((256, 28, 28), np.uint8), "train_labels": np.zeros(256, int)}}
hyperparameters = {{"batch_size": 64, "seed": 1, "rotation_deg": 0, "zoom": 0, "shift_px": 0}}
hyperparameters.update(dict.fromkeys(fit.RESTYLINGS, 0.0))
batches = iter(strategy.distribute_datasets_from_function(
    lambda context: fit.training_dataset(arrays, hyperparameters, context)
))
next(batches)
(worker,) = batches._iterators
devices = worker._iterator._device_iterators
print([d._dataset.options().autotune.enabled is not False for d in devices])  # None: on
"""


def _autotuning_per_device(fixed: bool) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(fixed=fixed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.strip().splitlines()[-1]


@pytest.mark.slow  # two TensorFlow processes
def test_per_device_datasets_of_a_multi_worker_strategy_do_not_autotune():
    # What TensorFlow does on its own: the training dataset's options do not reach them.
    assert _autotuning_per_device(fixed=False) == "[True]"
    assert _autotuning_per_device(fixed=True) == "[False]"


def test_strokes_and_focus_change_the_chosen_share_of_a_batch():
    """thicken grows the ink of every image at 1, of none at 0; blur softens; peaks stay 255."""
    import numpy as np

    from mnist_mlops.pipelines.training import fit

    images = np.zeros((64, 28, 28), np.uint8)
    images[:, 8:20, 13:15] = 255  # a 1, two pixels wide
    off = {"batch_size": 64, "seed": 3, "rotation_deg": 0, "zoom": 0, "shift_px": 0}
    off.update(dict.fromkeys(fit.RESTYLINGS, 0.0))

    def batch(**fractions) -> np.ndarray:
        arrays = {"train_images": images, "train_labels": np.zeros(64, int)}
        dataset = fit.training_dataset(arrays, {**off, **fractions})
        return next(iter(dataset))[0].numpy()

    ink = (images > 0).sum(axis=(1, 2))
    assert ((batch() > 0).sum(axis=(1, 2)) == ink).all()
    assert ((batch(thicken=1.0) > 0).sum(axis=(1, 2)) > ink).all()
    grown = (batch(thicken=0.5) > 0).sum(axis=(1, 2)) > ink
    assert 0.2 < grown.mean() < 0.8  # about half, chosen per image
    blurred = batch(blur=1.0)
    assert np.allclose(blurred.max(axis=(1, 2)), 255) and ((blurred > 0) & (blurred < 255)).any()
    assert ((batch(thin=1.0) > 0).sum(axis=(1, 2)) < ink).all()
