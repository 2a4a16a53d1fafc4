"""What the file datasets of this package share: fsspec paths, versioning, atomic writes."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, TypeVar

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")


class FileDataset(AbstractVersionedDataset[_DI, _DO]):
    """A versioned dataset stored as one file on any fsspec filesystem (local, abfs, gcs...).

    Local paths are made absolute, so that a Spark executor started elsewhere finds the file.
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._storage_options = {**(credentials or {}), **(fs_args or {})}
        protocol, path = get_protocol_and_path(filepath)
        if protocol == "file":
            path = str(PurePosixPath(fsspec.filesystem("file")._strip_protocol(path)))
        self._fs = fsspec.filesystem(protocol, **self._storage_options)
        self._protocol = protocol
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _write(self, payload: bytes) -> None:
        """Write to a temporary file beside the target, then move it into place.

        A failure half-way leaves the previous file (or none), never a truncated one.
        """
        path = get_filepath_str(self._get_save_path(), self._protocol)
        self._fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        partial = f"{path}.partial"
        with self._fs.open(partial, "wb") as f:
            f.write(payload)
        self._fs.mv(partial, path)
        self._fs.invalidate_cache(path)

    def _exists(self) -> bool:
        try:
            return self._fs.exists(self._load_path())
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}
