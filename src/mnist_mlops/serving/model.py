"""The served model: download and load a registered version, and follow a registry alias.

MLflow's current tracking URI and credentials (environment, or the caller's workspace scope)
say which registry. A ``models:/<name>@<alias>`` URI is followed: every worker checks the alias
every ``poll_s`` seconds, loads a new version in the background, warms it and swaps it in; any
other URI is served as it is. A challenger (``canary``) is followed the same way, except that it
may not exist: when its alias is gone, the worker drops it at the next look.

Every version's ONNX Runtime session gets a fixed number of threads that never spin (see
``session_config``): versions logged since the pyfunc declared its session settings open it so
through MLflow's ``model_config``; older ones, whose pickled code opens it with ONNX Runtime's
defaults and cannot change, have it re-opened here (``limit_threads``).
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

# MLflow's answer when an alias (or the model) does not exist: a challenger that is gone.
ABSENT = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"})


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


def load(downloaded: Download, uri: str, threads: int = 1) -> LoadedModel:
    """Open a downloaded model with ``threads`` ONNX Runtime threads (0: its defaults) and
    answer one request with it, so that the first client's request does not pay for the
    session's first run."""
    import mlflow

    config = session_config(downloaded.model_path, threads)
    path = str(downloaded.model_path)
    model = mlflow.pyfunc.load_model(path, model_config=config).unwrap_python_model()
    if threads and config is None:
        logger.info(
            "version %s was logged before its pyfunc took session settings: the server "
            "re-opens its ONNX session",
            downloaded.version,
        )
        limit_threads(model, downloaded.model_path, threads)
    startup.phase("load")
    model.probabilities(model.prepare(np.zeros((1, 28, 28), dtype=np.float32)))
    startup.phase("warm-up")
    return LoadedModel(model, downloaded.name, downloaded.version, uri, downloaded.folder)


def session_config(model_path: Path, threads: int) -> dict[str, Any] | None:
    """The ``model_config`` giving the model's session ``threads`` intra-op threads that never
    spin; None for ONNX Runtime's defaults (``threads`` 0) or a version whose logged model
    declares no such settings (logged before they existed).

    ONNX Runtime's default pool has one thread per core, spinning after each call: at 20
    single-image calls a second that cost 41.9 ms of CPU per call (83% of a core while nearly
    idle, stolen from the other workers) against 0.64 ms with one thread, for 0.1 ms of latency.
    """
    import mlflow

    from mnist_mlops.serving.pyfunc import SESSION_CONFIG

    flavor = mlflow.models.Model.load(str(model_path)).flavors[mlflow.pyfunc.FLAVOR_NAME]
    declared = flavor.get(mlflow.pyfunc.MODEL_CONFIG) or {}  # the MLmodel's ``config``
    if not threads or not SESSION_CONFIG.keys() <= declared.keys():
        return None
    return {"onnx_intra_op_threads": threads, "onnx_allow_spinning": False}


def limit_threads(model: Any, model_path: Path, threads: int) -> None:
    """Re-open the session of a version logged before the pyfunc took session settings with
    ``threads`` intra-op threads that never spin.

    Its pickled code opens the session with ONNX Runtime's defaults, and a logged model's code
    is frozen with its fingerprint: so the server replaces the session, which every one of
    those versions keeps in ``_session`` (its input name is the same file's). Re-logging such
    a version with the current code (a new version, with a new fingerprint) ends this.
    """
    import mlflow
    import onnxruntime

    from mnist_mlops.serving.pyfunc import ONNX_ARTIFACT

    flavor = mlflow.models.Model.load(str(model_path)).flavors["python_function"]
    onnx_file = Path(model_path) / flavor["artifacts"][ONNX_ARTIFACT]["path"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model._session = onnxruntime.InferenceSession(
        str(onnx_file), options, providers=["CPUExecutionProvider"]
    )


class ModelFollower:
    """Holds the model of one worker, and swaps in each new version of a followed alias.

    ``optional`` (the challenger): there may be no version at all, and when the alias is gone
    the model is dropped at the next look; production keeps serving what it has whatever the
    registry says, since no answer is worse than an old one.
    """

    def __init__(
        self,
        model_uri: str,
        first: Download | None,
        poll_s: float,
        root: Path,
        *,
        threads: int = 1,
        role: str = "production",
    ) -> None:
        self.model_uri, self.first, self.poll_s, self.root = model_uri, first, poll_s, root
        self.threads, self.role = threads, role
        self.current: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        """The version being served (``start`` has run: the app serves only after it)."""
        assert self.current is not None, "ModelFollower.start() has not run"
        return self.current

    async def start(self) -> None:
        """Load the first version (downloaded once for all workers by ``serve``), or for a
        challenger look whether there is one."""
        if self.first is None:
            await self.check()
            return
        self.current = await asyncio.to_thread(load, self.first, self.model_uri, self.threads)
        self._served(self.current)
        logger.info(
            "Serving %s version %s (ONNX Runtime: %d intra-op thread(s), no spinning)",
            self.current.name,
            self.current.version,
            self.threads,
        )

    async def follow(self) -> None:
        """For an alias, look at it every ``poll_s`` seconds until cancelled; a version number
        or a run's model never changes."""
        while alias_of(self.model_uri) is not None:
            await asyncio.sleep(self.poll_s)
            await self.check()

    async def check(self) -> None:
        """Swap in the alias's version if it moved; on any failure keep serving the current
        (a challenger whose alias is gone is dropped)."""
        downloaded = None
        try:
            _, version = await asyncio.to_thread(registered_version, self.model_uri)
            if self.current is not None and version == self.current.version:
                return
            logger.info("%s now points at version %s: loading it", self.model_uri, version)
            downloaded = await asyncio.to_thread(download, self.model_uri, self.root)
            fresh = await asyncio.to_thread(load, downloaded, self.model_uri, self.threads)
        except Exception as exc:  # whatever broke, the version being served keeps serving
            if downloaded is not None:  # the next poll tries again with a fresh download
                shutil.rmtree(downloaded.folder, ignore_errors=True)
            if self.role != "production" and getattr(exc, "error_code", None) in ABSENT:
                self._replace(None)
                return
            metrics.FAILED_SWAPS.inc()
            logger.error("not swapped in: %s failed to load: %r", self.model_uri, exc)
            return
        self._replace(fresh)

    def _replace(self, fresh: LoadedModel | None) -> None:
        old, self.current = self.current, fresh  # one assignment: requests see old or new
        if fresh is not None:
            metrics.SWAPS.inc()
            self._served(fresh)
            logger.info("Swapped in %s version %s (%s)", fresh.name, fresh.version, self.role)
        elif old is not None:
            metrics.MODEL_VERSION.labels(role=self.role).set(float("nan"))
            logger.info("%s no longer exists: version %s dropped", self.model_uri, old.version)
        if old is not None and (self.first is None or old.folder != self.first.folder):
            # The first download is shared by all workers; requests in flight hold the loaded
            # session, not its files.
            shutil.rmtree(old.folder, ignore_errors=True)

    def _served(self, loaded: LoadedModel) -> None:
        metrics.MODEL_VERSION.labels(role=self.role).set(_number(loaded.version))


def _number(version: str) -> float:
    return float(version) if version.isdigit() else float("nan")
