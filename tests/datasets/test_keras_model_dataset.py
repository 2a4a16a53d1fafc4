import subprocess
import sys

import numpy as np
import pytest
from kedro.io import DatasetError

from mnist_mlops.datasets import KerasModelDataset


def test_round_trip_predicts_the_same(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    dataset = KerasModelDataset(
        filepath=str(tmp_path / "models" / "m.keras"), load_args={"compile": False}
    )
    dataset.save(model)
    inputs = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(dataset.load()(inputs), model(inputs), rtol=1e-6)
    assert not list(tmp_path.glob("models/*.partial"))


def test_only_keras_files(tmp_path):
    with pytest.raises(DatasetError, match=r"writes \.keras files"):
        KerasModelDataset(filepath=str(tmp_path / "m.h5"))


def test_making_the_dataset_does_not_import_tensorflow(tmp_path):
    """A run that never reads the model (deploy, rollback, monitor) pays no TensorFlow import."""
    code = (
        "import sys; from mnist_mlops.datasets import KerasModelDataset; "
        f"KerasModelDataset(filepath={str(tmp_path / 'm.keras')!r}); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
