"""A Kedro dataset for labelled pictures: a CSV of (file, digit, category) and the files."""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import pandas as pd
from kedro.io.core import DatasetError

from mnist_mlops.datasets._fsspec import FileDataset

COLUMNS = ["file", "digit", "category"]


class PictureSetDataset(FileDataset[pd.DataFrame, pd.DataFrame]):
    """Reads and writes pictures listed in a labels CSV, paths relative to the CSV's folder.

    Loads a DataFrame with the columns ``file``, ``digit``, ``category`` and ``image`` (the
    file's bytes exactly as stored, so a JPEG keeps its compression and EXIF tags). Saving writes
    every image, then the CSV: the CSV never lists a picture that is not there.

    Example catalog entry::

        report_pictures:
          type: mnist_mlops.datasets.PictureSetDataset
          filepath: data/01_raw/report_pictures/labels.csv
    """

    def load(self) -> pd.DataFrame:
        path = self._load_path()
        with self._fs.open(path, "rb") as f:
            labels = pd.read_csv(f, dtype={"file": str, "digit": int, "category": str})
        missing = [column for column in COLUMNS if column not in labels.columns]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; expected {COLUMNS}")
        folder = PurePosixPath(path).parent
        images = []
        for name in labels["file"]:
            try:
                with self._fs.open(str(folder / name), "rb") as f:
                    images.append(f.read())
            except FileNotFoundError:
                raise DatasetError(f"{path} lists {name}, which is not in {folder}") from None
        return labels.assign(image=images)

    def save(self, data: pd.DataFrame) -> None:
        missing = [column for column in [*COLUMNS, "image"] if column not in data.columns]
        if missing:
            raise DatasetError(f"pictures to save lack column(s) {missing}")
        folder = PurePosixPath(str(self._get_save_path())).parent
        for name, payload in zip(data["file"], data["image"], strict=True):
            target = str(folder / name)
            self._fs.makedirs(str(PurePosixPath(target).parent), exist_ok=True)
            with self._fs.open(target, "wb") as f:
                f.write(payload)
        buffer = io.StringIO()
        data[COLUMNS].to_csv(buffer, index=False)
        self._write(buffer.getvalue().encode())
