import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mnist_mlops.datasets import ArrayBundleDataset
from mnist_mlops.pipelines.data_prep import create_pipeline
from mnist_mlops.pipelines.data_prep.nodes import (
    DataValidationError,
    split_train_validation,
    validate_mnist,
)
from mnist_mlops.pipelines.data_prep.parameters import DataPrepParameters

PARAMS = DataPrepParameters(validation_images=500, max_train_images=0, seed=1)


@pytest.fixture
def tiny(mnist_raw):
    return {name: array[:2000] for name, array in mnist_raw.items()}


def _validate(arrays):
    return validate_mnist(
        arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(train_images=a["train_images"][:, :27]), r"shape \(2000, 27, 28\)"),
        (lambda a: a.update(test_images=a["test_images"].astype(np.float32)), "dtype float32"),
        (lambda a: a.update(train_labels=a["train_labels"][:-1]), "2000 images but 1999 labels"),
        (lambda a: a.update(test_labels=a["test_labels"] + 1), "range from 1 to 10"),
        (
            lambda a: a.update(train_labels=np.where(a["train_labels"] == 3, 5, a["train_labels"])),
            r"no example of digit\(s\) \[3\]",
        ),
        (lambda a: a.update(train_labels=a["train_labels"].reshape(-1, 1)), "expected \\(N,\\)"),
    ],
)
def test_validation_names_what_is_wrong(tiny, change, message):
    change(tiny)
    with pytest.raises(DataValidationError, match=message):
        _validate(tiny)


def test_split_is_seeded_stratified_and_keeps_raw_pixels(tiny):
    first = split_train_validation(_validate(tiny), PARAMS)
    again = split_train_validation(_validate(tiny), PARAMS)
    np.testing.assert_array_equal(first["validation_labels"], again["validation_labels"])
    assert len(first["validation_images"]) == 500 and len(first["train_images"]) == 1500
    assert first["train_images"].dtype == np.uint8 and first["train_images"].max() == 255
    share = np.bincount(first["validation_labels"], minlength=10) / 500
    overall = np.bincount(tiny["train_labels"], minlength=10) / 2000
    np.testing.assert_allclose(share, overall, atol=0.01)


def test_max_train_images_limits_training_set_only(tiny):
    split = split_train_validation(
        _validate(tiny), PARAMS.model_copy(update={"max_train_images": 300})
    )
    assert len(split["train_images"]) == 300 and len(split["validation_images"]) == 500
    assert set(np.unique(split["train_labels"])) == set(range(10))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_train_images": 5}, "one image of each digit"),
        ({"validation_images": 1995}, "validation_images=1995"),
    ],
)
def test_bad_parameters(tiny, params, message):
    with pytest.raises(DataValidationError, match=message):
        split_train_validation(_validate(tiny), PARAMS.model_copy(update=params))


def test_pipeline_writes_model_input_and_report(tiny, tmp_path):
    catalog = DataCatalog(
        {
            **{f"mnist_{name}": MemoryDataset(array) for name, array in tiny.items()},
            "params:data_prep": MemoryDataset(PARAMS),
            "model_input": ArrayBundleDataset(filepath=str(tmp_path / "mnist.npz")),
            "data_report": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    report = catalog.load("data_report")
    assert report["splits"]["validation"]["images"] == 500
    assert sum(report["splits"]["train"]["class_counts"].values()) == 1500
    assert len(report["sha256"]["test_images"]) == 64
    assert catalog.load("model_input").load()["test_images"].shape == (2000, 28, 28)
