"""A Kedro dataset for a Keras model in one ``.keras`` file, importing TensorFlow only to use it.

kedro-datasets' ``TensorFlowModelDataset`` imports TensorFlow when its module loads, and
kedro-mlflow builds every catalog entry when a run starts: every ``kedro run`` (a deploy, a
rollback, monitoring, none of which touch the model) imported TensorFlow for it, 8-10 s of a
rollback's ~25 s on 2 cores (cProfile of ``kedro run --pipeline deploy``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import DatasetError, Version

from mnist_mlops.datasets._fsspec import FileDataset


class KerasModelDataset(FileDataset[Any, Any]):
    """Saves a ``tf.keras`` model as a ``.keras`` file (atomically, on any fsspec filesystem)
    and loads it back with ``load_args`` (``tf.keras.models.load_model``'s).

    Example catalog entry::

        champion_model:
          type: mnist_mlops.datasets.KerasModelDataset
          filepath: data/06_models/champion.keras
          load_args:
            compile: false
    """

    def __init__(
        self,
        *,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if PurePosixPath(filepath).suffix != ".keras":
            raise DatasetError(f"KerasModelDataset writes .keras files, not {filepath!r}")
        self._load_args = load_args or {}
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )

    def load(self) -> Any:
        import tensorflow as tf

        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "model.keras"
            with self._fs.open(self._load_path(), "rb") as f:
                local.write_bytes(f.read())
            return tf.keras.models.load_model(local, **self._load_args)

    def save(self, data: Any) -> None:
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "model.keras"
            data.save(local)
            self._write(local.read_bytes())
