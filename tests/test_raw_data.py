import gzip
import hashlib

import pytest

from tests.conftest import RAW_MNIST

MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


@pytest.mark.parametrize("name", sorted(MD5))
def test_shipped_files_are_the_original_mnist(name):
    raw = gzip.decompress((RAW_MNIST / f"{name}.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == MD5[name]


def test_sha256sums_match():
    for line in (RAW_MNIST / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((RAW_MNIST / name).read_bytes()).hexdigest() == digest
