"""Scoring request bodies: every form the server accepts, and every refusal of ``parse_body``.

Shared by the tests of ``parse_body`` (what each body parses to, which exception) and of the
app (the status and JSON error each refusal gets).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import numpy as np
import orjson
import pytest
from PIL import Image

from mnist_mlops.serving.parsing import TooLarge
from mnist_mlops.serving.preprocessing import InvalidInput

JSON, CSV = "application/json", "text/csv"
BUDGET = 1_000_000  # pixels: the app's tests run with the same max_image_pixels
IMAGE = [[7] * 28] * 28  # every pixel 7: the stand-in model reads a 7
FLAT = [7] * 784
HEADER = ",".join(f"p{i}" for i in range(784))


def picture(kind: str = "PNG", ink: bool = True) -> bytes:
    """A 56 x 56 picture: a white bar on black (a "1"), or black only (no digit in it)."""
    pixels = np.zeros((56, 56), np.uint8)
    if ink:
        pixels[10:46, 24:32] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, kind)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header announces a size (its pixel data is not there: nothing decodes it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))


BMP = (  # a 1 x 1 bitmap: a real image, in a format the server does not take
    b"BM"
    + struct.pack("<IHHI", 58, 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, 4, 0, 0, 0, 0)
    + b"\0" * 4
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body(payload: Any) -> bytes:
    return orjson.dumps(payload)


def records(*images: bytes) -> bytes:
    return body({"dataframe_records": [{"image": b64(i)} for i in images]})


def csv(*rows: str, header: str = HEADER) -> bytes:
    return "\n".join([header, *rows]).encode()


PIXEL_ROW = ",".join(["7"] * 784)

# (body, content type, labels it carries, shape of its pixels; None: pictures to decode)
ACCEPTED = [
    pytest.param(body({"inputs": [IMAGE, IMAGE]}), JSON, [None, None], (2, 28, 28), id="inputs"),
    pytest.param(body({"instances": [FLAT]}), JSON, [None], (1, 784), id="instances N x 784"),
    pytest.param(
        body({"inputs": {"pixels": [IMAGE], "label": [3]}}), JSON, [3], (1, 28, 28), id="columns"
    ),
    pytest.param(
        body({"instances": [{"pixels": IMAGE, "label": 3}, {"pixels": IMAGE, "label": None}]}),
        JSON,
        [3, None],
        (2, 28, 28),
        id="rows with labels",
    ),
    pytest.param(body({"instances": [{"x": FLAT}]}), JSON, [None], (1, 784), id="rows"),
    pytest.param(
        body({"dataframe_split": {"columns": ["image"], "data": [[b64(picture())]]}}),
        JSON,
        [None],
        None,
        id="dataframe_split image",
    ),
    pytest.param(
        body({"dataframe_records": [{"image": b64(picture("JPEG")), "label": 1}]}),
        JSON,
        [1],
        None,
        id="dataframe_records image and label",
    ),
    pytest.param(
        body({"dataframe_records": [{"pixels": FLAT}, {"pixels": FLAT}]}),
        JSON,
        [None, None],
        (2, 784),
        id="dataframe_records pixels",
    ),
    pytest.param(
        body({"dataframe_split": {"columns": [*range(784), "label"], "data": [[*FLAT, 7.0]]}}),
        JSON,
        [7],
        (1, 784),
        id="dataframe_split 784 columns and label",
    ),
    pytest.param(
        body({"dataframe_records": [{f"p{i}": 7 for i in range(784)}]}),
        JSON,
        [None],
        (1, 784),
        id="dataframe_records 784 columns",
    ),
    pytest.param(csv(PIXEL_ROW, PIXEL_ROW), CSV, [None, None], (2, 784), id="csv"),
    pytest.param(
        csv(f"{PIXEL_ROW},4", f"{PIXEL_ROW},nan", header=f'{HEADER},"label"'),
        CSV,
        [4, None],
        (2, 784),
        id="csv with label",
    ),
    pytest.param(
        body({"inputs": [IMAGE, IMAGE], "params": {"labels": [1, None]}}),
        JSON,
        [1, None],
        (2, 28, 28),
        id="params.labels",
    ),
    pytest.param(body({"inputs": [IMAGE], "params": None}), JSON, [None], (1, 28, 28), id="null"),
]

ONE = [IMAGE]
# (body, content type, exception, what its message names)
REFUSALS = [
    pytest.param(b"{not json", JSON, InvalidInput, "invalid JSON", id="not JSON"),
    pytest.param(b"\xff\xfe", JSON, InvalidInput, "invalid JSON", id="not UTF-8"),
    pytest.param(b'{"inputs": [[[NaN]]]}', JSON, InvalidInput, "invalid JSON", id="NaN"),
    pytest.param(b'{"inputs": [[[' + b"9" * 400 + b"]]]}", JSON, InvalidInput, "invalid JSON"),
    pytest.param(
        b'{"inputs": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", JSON, InvalidInput, "depth limit"
    ),
    pytest.param(body([1, 2]), JSON, InvalidInput, "must be a JSON object", id="a list"),
    pytest.param(body({}), JSON, InvalidInput, "exactly one of inputs, instances", id="no key"),
    pytest.param(body({"inputs": ONE, "instances": ONE}), JSON, InvalidInput, "exactly one of"),
    pytest.param(body({"inputs": ONE, "params": "x"}), JSON, InvalidInput, "params must be"),
    pytest.param(
        body({"dataframe_split": [["image"]]}), JSON, InvalidInput, 'be {"columns": [...]'
    ),
    pytest.param(
        body({"dataframe_split": {"columns": ["image"], "data": [["a", "b"]]}}),
        JSON,
        InvalidInput,
        "dataframe_split.data must be rows of 1 values",
    ),
    pytest.param(
        body({"dataframe_split": {"columns": ["image"]}}), JSON, InvalidInput, "rows of 1 values"
    ),
    pytest.param(
        body({"dataframe_records": {"image": "x"}}), JSON, InvalidInput, "a list of objects"
    ),
    pytest.param(
        body({"dataframe_records": [{"pixels": FLAT}, {"image": "x"}]}),
        JSON,
        InvalidInput,
        "every dataframe_records row must have the same columns",
    ),
    pytest.param(body({"dataframe_records": []}), JSON, InvalidInput, "the batch is empty"),
    pytest.param(
        body({"dataframe_records": [{"picture": "x"}]}),
        JSON,
        InvalidInput,
        'expected an "image" column (base64 PNG or JPEG), a "pixels" column',
    ),
    pytest.param(body({"dataframe_records": [{"image": 7}]}), JSON, InvalidInput, "base64 string"),
    pytest.param(
        body({"dataframe_records": [{"image": "%%%"}]}), JSON, InvalidInput, "not valid base64"
    ),
    pytest.param(records(b"not an image"), JSON, InvalidInput, "image 0 is not a PNG or JPEG"),
    pytest.param(records(picture(), BMP), JSON, InvalidInput, "image 1 is not a PNG or JPEG"),
    pytest.param(records(png_header(30_000, 30_000)), JSON, TooLarge, "more than 1000000 pixels"),
    pytest.param(
        records(png_header(1000, 600), png_header(1000, 600)),
        JSON,
        TooLarge,
        "the images add up to more than 1000000 pixels",
    ),
    pytest.param(
        body({"inputs": {"a": ONE, "b": ONE}}), JSON, InvalidInput, "must hold one tensor"
    ),
    pytest.param(
        body({"instances": [{"a": FLAT, "b": FLAT}]}),
        JSON,
        InvalidInput,
        "each instances row must hold one tensor, got columns ['a', 'b']",
    ),
    pytest.param(
        body({"inputs": ONE, "params": {"labels": [1, 2]}}),
        JSON,
        InvalidInput,
        "labels must be a list of 1 digits 0-9",
    ),
    pytest.param(body({"inputs": ONE, "params": {"labels": 3}}), JSON, InvalidInput, "list of 1"),
    pytest.param(body({"inputs": ONE, "params": {"labels": [10]}}), JSON, InvalidInput, "got '10'"),
    pytest.param(
        body({"inputs": ONE, "params": {"labels": [True]}}), JSON, InvalidInput, "got 'True'"
    ),
    pytest.param(body({"inputs": ONE, "params": {"labels": [-5]}}), JSON, InvalidInput, "got '-5'"),
    pytest.param(
        body({"instances": [{"pixels": FLAT, "label": "3"}]}), JSON, InvalidInput, "got '3'"
    ),
    pytest.param(
        body({"dataframe_split": {"columns": ["pixels", "label"], "data": [[FLAT, 3.5]]}}),
        JSON,
        InvalidInput,
        "got '3.5'",
    ),
    pytest.param(body({"inputs": {"pixels": ONE, "label": [99]}}), JSON, InvalidInput, "got '99'"),
    pytest.param(
        body({"dataframe_records": [{"pixels": FLAT, "label": 2}], "params": {"labels": [2]}}),
        JSON,
        InvalidInput,
        "either as a label column or params.labels",
    ),
    pytest.param(b"\xff" + csv(PIXEL_ROW), CSV, InvalidInput, "CSV body is not UTF-8"),
    pytest.param(csv(), CSV, InvalidInput, "a header line and at least one row"),
    pytest.param(csv("a,b"), CSV, InvalidInput, "CSV rows must be numbers"),
    pytest.param(csv("1,2", header="a,b,c"), CSV, InvalidInput, "CSV rows have 2 values for 3"),
    pytest.param(csv(f"{PIXEL_ROW},12", header=f"{HEADER},label"), CSV, InvalidInput, "got '12'"),
]
