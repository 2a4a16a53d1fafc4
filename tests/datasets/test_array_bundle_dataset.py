import pickle

import numpy as np
import pytest
from kedro.io import DatasetError

from mnist_mlops.datasets import ArrayBundle, ArrayBundleDataset


def test_round_trip_through_a_picklable_reference(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.array([1, 2, 3])}
    dataset = ArrayBundleDataset(filepath=str(tmp_path / "data" / "bundle.npz"))
    dataset.save(arrays)
    bundle = dataset.load()
    assert isinstance(bundle, ArrayBundle) and bundle.uri.startswith("/")
    loaded = pickle.loads(pickle.dumps(bundle)).load()  # as a Spark worker receives it
    assert loaded.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert not list(tmp_path.glob("data/*.partial"))


def test_load_before_save_says_what_to_run(tmp_path):
    with pytest.raises(DatasetError, match="run the data_prep pipeline"):
        ArrayBundleDataset(filepath=str(tmp_path / "none.npz")).load()


def test_refuses_empty_bundle(tmp_path):
    with pytest.raises(DatasetError, match="non-empty dict"):
        ArrayBundleDataset(filepath=str(tmp_path / "b.npz")).save({})
