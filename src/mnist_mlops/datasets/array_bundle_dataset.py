"""A Kedro dataset for named NumPy arrays that Spark executors read from the same storage."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import DatasetError

from mnist_mlops.datasets._fsspec import FileDataset


@dataclass(frozen=True)
class ArrayBundle:
    """A reference to a saved ``.npz`` bundle: small to pickle, loaded where it is used.

    Training workers receive this reference, not the arrays, and read the bundle themselves
    from its storage (local disk, abfs, gcs), as they would on a real cluster.
    """

    uri: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] | None = None  # the arrays load() reads; None: all of them

    def load(self) -> dict[str, np.ndarray]:
        """Read the bundle's arrays (those of ``names`` only, when given)."""
        with fsspec.open(self.uri, "rb", **self.storage_options) as f:
            buffer = io.BytesIO(f.read())
        with np.load(buffer, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files if name in (self.names or npz.files)}


class ArrayBundleDataset(FileDataset[dict[str, np.ndarray], ArrayBundle]):
    """Saves a dict of arrays as one ``.npz`` file; loads an :class:`ArrayBundle` pointing at it.

    Example catalog entry::

        model_input:
          type: mnist_mlops.datasets.ArrayBundleDataset
          filepath: data/05_model_input/mnist.npz
    """

    def _uri(self, path: str) -> str:
        return path if self._protocol == "file" else f"{self._protocol}://{path}"

    def load(self) -> ArrayBundle:
        path = self._load_path()
        if not self._fs.exists(path):
            raise DatasetError(f"No array bundle at {path}: run the data_prep pipeline first")
        return ArrayBundle(self._uri(path), self._storage_options)

    def save(self, data: dict[str, np.ndarray]) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError("ArrayBundleDataset saves a non-empty dict of NumPy arrays")
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {name: np.asarray(array) for name, array in data.items()}
        np.savez(buffer, **arrays)
        self._write(buffer.getvalue())
