"""Scoring requests in every form MLflow's scoring server accepts for this model.

JSON: ``inputs`` / ``instances`` (a tensor N x 28 x 28 or N x 784, or columns / rows of one),
``dataframe_split`` and ``dataframe_records`` (an ``image`` column of base64 PNG/JPEG, a
``pixels`` column of 784 values, or 784 pixel columns), each with an optional ``label`` column of
feedback; ``params`` may carry ``labels`` and ``return_prepared``. ``text/csv``: a header row and
784 pixel columns, optionally ``label``. Images are only opened here to read their size from the
header: the served model's own preprocessing decodes them, once the request is within budget.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mnist_mlops.serving.preprocessing import InvalidInput

INPUT_KEYS = ("inputs", "instances", "dataframe_split", "dataframe_records")
IMAGE_FORMATS = ("PNG", "JPEG")


class TooLarge(InvalidInput):
    """A request within the body limit whose images would cost more than the pixel budget."""


@dataclass
class ScoringRequest:
    """What the model is given (pixels, or a table of decoded images) and what comes with it."""

    model_input: Any
    rows: int
    labels: list[int | None]
    return_prepared: bool = False
    images: list[bytes] = field(default_factory=list)


def parse_body(raw: bytes, mime_type: str, max_image_pixels: int) -> ScoringRequest:
    """A scoring request from a body of the given content type (``application/json`` or
    ``text/csv``).

    Raises:
        InvalidInput: the body is not a valid request (the message says why).
        TooLarge: its images add up to more than ``max_image_pixels``.
    """
    if mime_type == "text/csv":
        return _from_csv(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    keys = [key for key in INPUT_KEYS if key in body]
    if len(keys) != 1:
        raise InvalidInput(f"the body must have exactly one of {', '.join(INPUT_KEYS)}")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidInput("params must be a JSON object")
    key = keys[0]
    if key in ("dataframe_split", "dataframe_records"):
        columns, data = _table(body[key], key)
        request = _from_table(columns, data, max_image_pixels)
    else:
        request = _from_tensor(body[key], key)
    if params.get("labels") is not None:
        if any(label is not None for label in request.labels):
            raise InvalidInput("give feedback labels either as a label column or params.labels")
        request.labels = _labels(params["labels"], request.rows)
    request.return_prepared = params.get("return_prepared") is True
    return request


def _table(value: Any, key: str) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of ``dataframe_split`` ({"columns", "data"}) or ``dataframe_records``."""
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list):
            raise InvalidInput('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        columns, data = value["columns"], value.get("data")
        if not isinstance(data, list) or not all(
            isinstance(row, list) and len(row) == len(columns) for row in data
        ):
            raise InvalidInput(f"dataframe_split.data must be rows of {len(columns)} values")
        return [str(column) for column in columns], data
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise InvalidInput("dataframe_records must be a list of objects (one per row)")
    columns = list(value[0]) if value else []
    if any(list(row) != columns for row in value):
        raise InvalidInput("every dataframe_records row must have the same columns")
    return columns, [list(row.values()) for row in value]


def _from_table(columns: list[str], data: list[list[Any]], budget: int) -> ScoringRequest:
    if not data:
        raise InvalidInput("the batch is empty")
    labels: list[int | None] = [None] * len(data)
    if "label" in columns:
        at = columns.index("label")
        labels = _labels([row[at] for row in data], len(data))
        columns = columns[:at] + columns[at + 1 :]
        data = [row[:at] + row[at + 1 :] for row in data]
    if columns == ["image"]:
        images = [_image_bytes(row[0]) for row in data]
        _check_pixel_budget(images, budget)
        import pandas as pd

        frame = pd.DataFrame({"image": images})
        return ScoringRequest(frame, len(images), labels, images=images)
    if columns == ["pixels"]:
        return ScoringRequest([row[0] for row in data], len(data), labels)
    if len(columns) == 28 * 28:
        return ScoringRequest(data, len(data), labels)
    raise InvalidInput(
        'expected an "image" column (base64 PNG or JPEG), a "pixels" column (784 values) or '
        f"784 pixel columns, each optionally with a label column; got {len(columns)} columns"
    )


def _from_tensor(value: Any, key: str) -> ScoringRequest:
    """``inputs`` / ``instances``: a tensor, its columns ({name: tensor}) or its rows."""
    if isinstance(value, dict):  # columnar: {"pixels": [...], "label": [...]}
        labels = value.get("label")
        tensors = [name for name in value if name != "label"]
        if len(tensors) != 1:
            raise InvalidInput(f"{key} as an object must hold one tensor, got {sorted(value)}")
        value = value[tensors[0]]
        rows = len(value) if isinstance(value, list) else 0
        found: list[int | None] = _labels(labels, rows) if labels is not None else [None] * rows
        return ScoringRequest(value, rows, found)
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        columns, data = _table(value, key)  # rows: [{"pixels": [...], "label": 3}, ...]
        if "label" in columns:
            at = columns.index("label")
            labels = _labels([row[at] for row in data], len(data))
            data = [row[:at] + row[at + 1 :] for row in data]
            columns = columns[:at] + columns[at + 1 :]
        else:
            labels = [None] * len(data)
        if len(columns) != 1:
            raise InvalidInput(f"each {key} row must hold one tensor, got columns {columns}")
        return ScoringRequest([row[0] for row in data], len(data), labels)
    rows = len(value) if isinstance(value, list) else 0
    return ScoringRequest(value, rows, [None] * rows)


def _from_csv(raw: bytes) -> ScoringRequest:
    """``text/csv``: a header, then one image per line (784 pixels, optionally a label)."""
    try:
        lines = raw.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise InvalidInput("the CSV body is not UTF-8 text") from None
    if len(lines) < 2:
        raise InvalidInput("the CSV body needs a header line and at least one row")
    columns = [name.strip().strip('"') for name in lines[0].split(",")]
    try:
        data = np.loadtxt(lines[1:], delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise InvalidInput(f"CSV rows must be numbers: {exc}") from None
    if data.shape[1] != len(columns):
        raise InvalidInput(f"CSV rows have {data.shape[1]} values for {len(columns)} columns")
    labels: list[int | None] = [None] * len(data)
    if "label" in columns:
        at = columns.index("label")
        labels = _labels([None if math.isnan(x) else x for x in data[:, at]], len(data))
        data = np.delete(data, at, axis=1)
    return ScoringRequest(data, len(data), labels)


def _labels(values: Any, rows: int) -> list[int | None]:
    """Feedback labels: integers 0-9 (or null for an image without one), one per image."""
    if not isinstance(values, list) or len(values) != rows:
        raise InvalidInput(f"labels must be a list of {rows} digits 0-9, one per image")
    labels = []
    for value in values:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # CSV numbers
        if value is not None and (type(value) is not int or not 0 <= value <= 9):
            raise InvalidInput(f"labels must be digits 0-9 (or null), got {str(value)[:20]!r}")
        labels.append(value)
    return labels


def _image_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput("an image must be a base64 string of a PNG or JPEG file")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("image is not valid base64") from None


def _check_pixel_budget(images: list[bytes], budget: int) -> None:
    """Refuse before any decoding when the images' header sizes add up to more than
    ``budget`` pixels: a small compressed file can decode to gigabytes."""
    from PIL import Image, UnidentifiedImageError

    total = 0
    for number, data in enumerate(images):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                    total += image.width * image.height
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            total = budget + 1
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise InvalidInput(f"image {number} is not a PNG or JPEG file") from None
        if total > budget:
            raise TooLarge(f"the images add up to more than {budget} pixels: send smaller images")
