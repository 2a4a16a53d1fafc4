"""A Kedro dataset naming where an Optuna study lives: a journal file, or a database."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class StudyStorageError(RuntimeError):
    """The study storage cannot be opened; the message never holds a password."""


@dataclass(frozen=True)
class StudyStorage:
    """Where a study lives, small to pickle: the driver and every Spark executor open it.

    ``url`` (an SQLAlchemy URL, e.g. the sandbox's PostgreSQL) wins; without one, the journal
    file ``journal``, which Optuna advises over SQLite for workers in parallel. Its ``repr``
    and :attr:`display` never show the URL's user or password.
    """

    journal: str
    url: str = ""

    def __repr__(self) -> str:
        return f"StudyStorage({self.display})"

    @property
    def display(self) -> str:
        """Where, for logs and summaries: the journal's path, or the database without its user."""
        if not self.url:
            return f"journal file {self.journal}"
        from sqlalchemy.engine import make_url

        try:
            url = make_url(self.url)
        except Exception:  # an unparsable URL: say nothing of its content
            return "database (unparsable URL)"
        return f"{url.get_backend_name()} database {url.database} at {url.host}:{url.port}"

    def open(self) -> Any:
        """The Optuna storage, once per process (a Spark worker reuses it across trials).

        Raises:
            StudyStorageError: naming the storage (no password) and why it cannot be opened.
        """
        return _open(self)


@functools.cache
def _open(storage: StudyStorage) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    try:
        if storage.url:
            # Each worker holds one connection between trials: no pool of idle ones.
            return optuna.storages.RDBStorage(
                storage.url, engine_kwargs={"pool_pre_ping": True, "pool_size": 1}
            )
        Path(storage.journal).parent.mkdir(parents=True, exist_ok=True)
        # The open(2)-based lock works on every file system (the default symlink lock may not).
        backend = JournalFileBackend(storage.journal, JournalFileOpenLock(storage.journal))
        return optuna.storages.JournalStorage(backend)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if storage.url:
            reason = reason.replace(storage.url, "<url>")
        raise StudyStorageError(
            f"The study storage ({storage.display}) cannot be opened: {reason}"
        ) from None


class StudyStorageDataset(AbstractDataset[None, StudyStorage]):
    """Loads the :class:`StudyStorage` of the environment (read only: trials write to it).

    Example catalog entry::

        tuning_storage:
          type: mnist_mlops.datasets.StudyStorageDataset
          journal: data/06_models/optuna/journal.log
          credentials: optuna_storage  # {url: ...}; an empty url keeps the journal file
    """

    def __init__(
        self,
        *,
        journal: str,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        # Absolute: a Spark executor started in another folder opens the same file.
        self._storage = StudyStorage(
            journal=os.path.abspath(journal), url=(credentials or {}).get("url") or ""
        )
        self.metadata = metadata

    def load(self) -> StudyStorage:
        return self._storage

    def save(self, data: None) -> None:
        raise DatasetError("The study storage is written by the trials themselves, not saved")

    def _describe(self) -> dict[str, Any]:
        return {"storage": self._storage.display}
