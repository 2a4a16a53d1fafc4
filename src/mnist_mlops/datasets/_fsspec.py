"""What the fsspec-backed datasets of this package share."""

from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import get_protocol_and_path


def open_filesystem(
    filepath: str, credentials: dict[str, Any] | None, fs_args: dict[str, Any] | None
) -> tuple[fsspec.AbstractFileSystem, str, PurePosixPath]:
    """Return the filesystem for ``filepath``, its protocol and its path on that filesystem.

    Local paths are made absolute so that a Spark executor started elsewhere finds the same file.
    """
    protocol, path = get_protocol_and_path(filepath)
    if protocol == "file":
        path = str(PurePosixPath(fsspec.filesystem("file")._strip_protocol(path)))
    fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
    return fs, protocol, PurePosixPath(path)


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then move it into place.

    A failure half-way leaves the previous file (or none), never a truncated one.
    """
    fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
    partial = f"{path}.partial"
    with fs.open(partial, "wb") as f:
        f.write(payload)
    fs.mv(partial, path)
    fs.invalidate_cache(path)
