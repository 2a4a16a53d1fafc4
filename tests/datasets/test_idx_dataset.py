import gzip

import numpy as np
import pytest
from kedro.io import DatasetError

from mnist_mlops.datasets import IDXDataset
from tests.conftest import RAW_MNIST


@pytest.mark.parametrize("suffix", ["idx", "idx.gz"])
def test_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    dataset = IDXDataset(filepath=str(tmp_path / f"images.{suffix}"))
    assert not dataset.exists()
    dataset.save(images)
    assert dataset.exists()
    np.testing.assert_array_equal(dataset.load(), images)
    assert (tmp_path / f"images.{suffix}").read_bytes()[:2] == (
        b"\x1f\x8b" if suffix.endswith("gz") else b"\x00\x00"
    )


def test_reads_the_original_mnist_files():
    labels = IDXDataset(filepath=str(RAW_MNIST / "t10k-labels-idx1-ubyte.gz")).load()
    images = IDXDataset(filepath=str(RAW_MNIST / "t10k-images-idx3-ubyte.gz")).load()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test digits


def _write(tmp_path, name, payload: bytes):
    path = tmp_path / name
    path.write_bytes(payload)
    return IDXDataset(filepath=str(path))


def test_truncated_data_names_expected_and_actual_size(tmp_path):
    good = (RAW_MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    raw = gzip.decompress(good)
    with pytest.raises(DatasetError, match=r"shape \(10000,\).*holds 9990 bytes"):
        _write(tmp_path, "short.idx", raw[:-10]).load()


def test_truncated_gzip_stream(tmp_path):
    good = (RAW_MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        _write(tmp_path, "cut.idx.gz", good[: len(good) // 2]).load()


def test_bad_magic_number(tmp_path):
    with pytest.raises(DatasetError, match="bad IDX magic number 0x00000d01"):
        _write(tmp_path, "bad.idx", b"\x00\x00\x0d\x01" + b"\x00" * 8).load()


def test_too_short_for_a_header(tmp_path):
    with pytest.raises(DatasetError, match="too short"):
        _write(tmp_path, "tiny.idx", b"\x00\x00").load()


def test_refuses_to_save_what_idx_cannot_hold(tmp_path):
    dataset = IDXDataset(filepath=str(tmp_path / "x.idx"))
    with pytest.raises(DatasetError, match="float32"):
        dataset.save(np.zeros((2, 2), dtype=np.float32))
    assert not (tmp_path / "x.idx").exists()
