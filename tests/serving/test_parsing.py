"""``parse_body``: what every accepted request form gives the model, and every refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_mlops.serving.parsing import TooLarge, parse_body
from tests.serving.bodies import (
    ACCEPTED,
    BUDGET,
    IMAGE,
    JSON,
    REFUSALS,
    b64,
    body,
    picture,
    png_header,
    records,
)


@pytest.mark.parametrize(("raw", "mime_type", "labels", "shape"), ACCEPTED)
def test_every_accepted_form_gives_pixels_or_pictures_and_its_labels(raw, mime_type, labels, shape):
    request = parse_body(raw, mime_type, BUDGET)
    assert request.rows == len(labels) and request.labels == labels
    assert request.return_prepared is False
    if shape is None:  # pictures: decoded by the served model, handed over as bytes
        assert isinstance(request.model_input, pd.DataFrame)
        assert list(request.model_input["image"]) == request.images and len(request.images) == 1
        assert request.images[0][:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0")
    else:
        pixels = np.asarray(request.model_input, dtype=np.float64)
        assert pixels.shape == shape and (pixels == 7).all()
        assert request.images == []


@pytest.mark.parametrize(("raw", "mime_type", "exception", "message"), REFUSALS)
def test_every_refusal_names_what_is_wrong(raw, mime_type, exception, message):
    with pytest.raises(exception) as refused:
        parse_body(raw, mime_type, BUDGET)
    assert message in str(refused.value)
    assert exception is TooLarge or not isinstance(refused.value, TooLarge)


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"return_prepared": True}, True), ({"return_prepared": "yes"}, False), ({}, False)],
)
def test_return_prepared_only_when_true(params, expected):
    request = parse_body(body({"inputs": [IMAGE], "params": params}), JSON, BUDGET)
    assert request.return_prepared is expected


def test_the_pixel_budget_counts_every_picture_of_the_request():
    one = png_header(1000, 500)
    assert parse_body(records(one, one), JSON, BUDGET).rows == 2  # exactly the budget
    with pytest.raises(TooLarge):
        parse_body(records(one, one, png_header(1, 1)), JSON, BUDGET)


def test_a_decompression_bomb_is_refused_from_its_header_alone():
    """Pillow's own bomb check (about 179 million pixels) fires before the budget is added up."""
    with pytest.raises(TooLarge, match="send smaller images"):
        parse_body(records(png_header(20_000, 20_000)), JSON, 10**12)


def test_pictures_keep_their_order_and_labels():
    pictures = [picture(), picture("JPEG"), picture(ink=False)]
    labelled = zip(pictures, [1, None, 0], strict=True)
    rows = [{"image": b64(p), "label": label} for p, label in labelled]
    request = parse_body(body({"dataframe_records": rows}), JSON, BUDGET)
    assert request.images == pictures and request.labels == [1, None, 0]
    assert list(request.model_input.columns) == ["image"]
