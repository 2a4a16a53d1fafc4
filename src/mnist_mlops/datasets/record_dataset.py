"""A Kedro dataset for a typed record (a pydantic model) kept as indented JSON."""

from __future__ import annotations

import importlib
from typing import Any

from kedro.io.core import DatasetError, Version
from pydantic import BaseModel, ValidationError

from mnist_mlops.datasets._fsspec import FileDataset


def _record_class(dotted: str) -> type[BaseModel]:
    module, _, name = dotted.rpartition(".")
    found = getattr(importlib.import_module(module), name, None) if module else None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise DatasetError(f"record {dotted!r} is not an importable pydantic model")
    return found


class RecordDataset(FileDataset[BaseModel, BaseModel]):
    """Saves a record as JSON and loads it back validated as the same type, so that what a node
    reads from disk is checked as strictly as what it got in memory.

    Example catalog entry::

        gate_evaluation:
          type: mnist_mlops.datasets.RecordDataset
          record: mnist_mlops.registry.records.GateEvaluation
          filepath: data/08_reporting/gate_evaluation.json
    """

    def __init__(
        self,
        *,
        filepath: str,
        record: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._record = _record_class(record)
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )

    def load(self) -> BaseModel:
        path = self._load_path()
        with self._fs.open(path, "rb") as f:
            try:
                return self._record.model_validate_json(f.read())
            except ValidationError as exc:
                kind = self._record.__name__
                raise DatasetError(f"{path} is not a valid {kind}: {exc}") from None

    def save(self, data: BaseModel) -> None:
        if not isinstance(data, self._record):
            raise DatasetError(
                f"expected a {self._record.__name__} to save, got {type(data).__name__}"
            )
        self._write(data.model_dump_json(indent=2).encode() + b"\n")

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "record": self._record.__name__}
