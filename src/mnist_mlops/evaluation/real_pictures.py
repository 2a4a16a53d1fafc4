"""Scoring a picture set (``report_pictures`` or ``tuning_pictures`` in the catalog) with a
pyfunc: as ``dataframe_records`` batches like any client, and the accuracy per category."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pandas as pd


def picture_batches(pictures: pd.DataFrame, size: int) -> list[list[dict[str, str]]]:
    """The pictures as ``dataframe_records`` batches of at most ``size``, files sent as stored."""
    records = [{"image": base64.b64encode(image).decode()} for image in pictures["image"]]
    return [records[start : start + size] for start in range(0, len(records), size)]


def picture_accuracy(
    model: Any, pictures: pd.DataFrame, batch_size: int
) -> tuple[float, dict[str, float]]:
    """Accuracy on the real-picture set, overall and per category, scored batch by batch; a
    picture the model found no digit in (a null digit) counts as wrong."""
    read = np.concatenate(
        [
            model.predict(pd.DataFrame(batch))["digit"].to_numpy()
            for batch in picture_batches(pictures, batch_size)
        ]
    )
    right = pd.Series(
        [d is not None and d == label for d, label in zip(read, pictures["digit"], strict=True)],
        index=pictures.index,
    )
    by_category = right.groupby(pictures["category"]).mean()
    return float(right.mean()), {name: round(float(v), 4) for name, v in by_category.items()}
