"""The served model: download and load a registered version, and follow a registry alias.

MLflow's current tracking URI and credentials (environment, or the caller's workspace scope)
say which registry. A ``models:/<name>@<alias>`` URI is followed: every worker checks the alias
every ``poll_s`` seconds, loads a new version in the background, warms it and swaps it in; any
other URI is served as it is.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_mlops.serving import metrics, startup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded version and what ``/version`` says about it."""

    model: Any  # the logged MnistDigitModel, with its own preprocessing
    name: str
    version: str
    uri: str
    folder: Path  # the download, removed once another version is served


def alias_of(model_uri: str) -> tuple[str, str] | None:
    """``(name, alias)`` of a ``models:/<name>@<alias>`` URI, None for any other URI."""
    reference = model_uri.removeprefix("models:/")
    if reference != model_uri and "@" in reference:
        name, alias = reference.split("@", 1)
        return name, alias
    return None


def registered_version(model_uri: str) -> tuple[str, str]:
    """The registered model name and version a URI points at now (alias resolved)."""
    import mlflow

    followed = alias_of(model_uri)
    if followed:
        name, alias = followed
        return name, str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    reference = model_uri.removeprefix("models:/")
    if reference != model_uri and "/" in reference:
        name, version = reference.split("/", 1)
        return name, version
    return model_uri, "unknown"


@dataclass(frozen=True)
class Download:
    """A version downloaded into a folder of its own."""

    folder: Path
    model_path: Path
    name: str
    version: str


def download(model_uri: str, root: Path) -> Download:
    """Download the version a URI points at now into a new folder under ``root``."""
    import mlflow

    name, version = registered_version(model_uri)
    startup.phase("registry lookup")
    pinned = f"models:/{name}/{version}" if version != "unknown" else model_uri
    folder = Path(tempfile.mkdtemp(prefix=f"v{version}-", dir=root))
    try:
        path = mlflow.artifacts.download_artifacts(pinned, dst_path=str(folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    startup.phase("download")
    return Download(folder, Path(path), name, version)


def load(downloaded: Download, uri: str) -> LoadedModel:
    """Open a downloaded model and answer one request with it, so that the first client's
    request does not pay for the session's first run."""
    import mlflow

    model = mlflow.pyfunc.load_model(str(downloaded.model_path)).unwrap_python_model()
    startup.phase("load")
    model.probabilities(model.prepare(np.zeros((1, 28, 28), dtype=np.float32)))
    startup.phase("warm-up")
    return LoadedModel(model, downloaded.name, downloaded.version, uri, downloaded.folder)


class ModelFollower:
    """Holds the model of one worker, and swaps in each new version of a followed alias."""

    def __init__(self, model_uri: str, first: Download, poll_s: float, root: Path) -> None:
        self.model_uri, self.first, self.poll_s, self.root = model_uri, first, poll_s, root
        self.current: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        """The version being served (``start`` has run: the app serves only after it)."""
        assert self.current is not None, "ModelFollower.start() has not run"
        return self.current

    async def start(self) -> None:
        """Load the first version (downloaded once for all workers by ``serve``)."""
        self.current = await asyncio.to_thread(load, self.first, self.model_uri)
        metrics.MODEL_VERSION.set(_number(self.current.version))
        logger.info("Serving %s version %s", self.current.name, self.current.version)

    async def follow(self) -> None:
        """For an alias, look at it every ``poll_s`` seconds until cancelled; a version number
        or a run's model never changes."""
        while alias_of(self.model_uri) is not None:
            await asyncio.sleep(self.poll_s)
            await self.check()

    async def check(self) -> None:
        """Swap in the alias's version if it moved; on any failure keep serving the current."""
        downloaded = None
        try:
            _, version = await asyncio.to_thread(registered_version, self.model_uri)
            if self.current is None or version == self.current.version:
                return
            logger.info("%s now points at version %s: loading it", self.model_uri, version)
            downloaded = await asyncio.to_thread(download, self.model_uri, self.root)
            fresh = await asyncio.to_thread(load, downloaded, self.model_uri)
        except Exception as exc:  # whatever broke, the version being served keeps serving
            if downloaded is not None:  # the next poll tries again with a fresh download
                shutil.rmtree(downloaded.folder, ignore_errors=True)
            metrics.FAILED_SWAPS.inc()
            logger.error("not swapped in: %s failed to load: %r", self.model_uri, exc)
            return
        old, self.current = self.current, fresh  # one assignment: requests see old or new
        metrics.SWAPS.inc()
        metrics.MODEL_VERSION.set(_number(fresh.version))
        logger.info("Swapped in %s version %s", fresh.name, fresh.version)
        if old.folder != self.first.folder:  # the first download is shared by all workers
            # Requests in flight hold the loaded session, not its files.
            shutil.rmtree(old.folder, ignore_errors=True)


def _number(version: str) -> float:
    return float(version) if version.isdigit() else float("nan")
