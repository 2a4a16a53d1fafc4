"""A Kedro dataset for the IDX format of the original MNIST files."""

from __future__ import annotations

import gzip
import io

import numpy as np
from kedro.io.core import DatasetError

from mnist_mlops.datasets._fsspec import FileDataset

_GZIP_MAGIC = b"\x1f\x8b"
# IDX magic: two zero bytes, a type code, the number of dimensions.
_DTYPES = {0x08: np.dtype(np.uint8)}
_TYPE_CODES = {dtype: code for code, dtype in _DTYPES.items()}


def decode_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (gzipped or not) into an array, checking header and length."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{source}: corrupt or truncated gzip stream ({exc})") from exc
    if len(raw) < 4:
        raise DatasetError(f"{source}: {len(raw)} bytes is too short for an IDX header")
    zero, type_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or type_code not in _DTYPES or not 1 <= ndim <= 4:
        raise DatasetError(
            f"{source}: bad IDX magic number 0x{raw[:4].hex()} "
            "(expected 0x0000080N: unsigned bytes in N = 1 to 4 dimensions)"
        )
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DatasetError(f"{source}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = len(raw) - header_end
    if actual != expected:
        raise DatasetError(
            f"{source}: header says shape {shape} ({expected} bytes of data) "
            f"but the file holds {actual} bytes: truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an unsigned-byte array as IDX bytes."""
    if array.dtype not in _TYPE_CODES:
        raise DatasetError(f"IDX supports only {list(_TYPE_CODES)} arrays, got {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise DatasetError(f"IDX supports 1 to 4 dimensions, got {array.ndim}")
    header = bytes([0, 0, _TYPE_CODES[array.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


class IDXDataset(FileDataset[np.ndarray, np.ndarray]):
    """Reads and writes IDX files (the MNIST format), gzipped when the path ends in ``.gz``.

    Example catalog entry::

        mnist_train_images:
          type: mnist_mlops.datasets.IDXDataset
          filepath: data/01_raw/mnist/train-images-idx3-ubyte.gz
    """

    def load(self) -> np.ndarray:
        path = self._load_path()
        with self._fs.open(path, "rb") as f:
            raw = f.read()
        return decode_idx(raw, source=path)

    def save(self, data: np.ndarray) -> None:
        payload = encode_idx(np.asarray(data))
        if str(self._filepath).endswith(".gz"):
            buffer = io.BytesIO()
            with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
                gz.write(payload)
            payload = buffer.getvalue()
        self._write(payload)
