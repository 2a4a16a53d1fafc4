"""The served model reads picture sets: MNIST test digits in real scenes, and photos.

The tuning set (``photos/``) is the one the preprocessing was tuned on; the report set
(``report_pictures/``: other digits, seeds and scene ranges) is the one that tells.
"""

import base64

import numpy as np
import pandas as pd
import pytest

from mnist_mlops.datasets import PictureSetDataset
from tests.conftest import REAL_PICTURES, REPORT_PICTURES
from tests.serving.conftest import post

# Met by the session's decent model (about 99% on MNIST): 364/372 of the tuning set, every
# category >= 90%; see docs/handwriting.md.
MIN_OVERALL = 0.97
MIN_PER_CATEGORY = 0.9
# The report set, measured with the same model: 98.0% of 1,800 (90.2% before issue 23, 97.4%
# after its first session), its weakest categories thick soft strokes (87%), tight crops and
# phone photos (95-96%). The default run's champion reads 98.72% (docs/handwriting.md); these
# floors keep what this model reached.
MIN_REPORT_OVERALL = 0.975
MIN_REPORT_PER_CATEGORY = 0.85


def read_set(server, labels) -> pd.DataFrame:
    """Every picture of a set, sent in batches of 32 as any client would, and what was read."""
    pictures = PictureSetDataset(filepath=str(labels)).load()
    digits = []
    for start in range(0, len(pictures), 32):
        records = [
            {"image": base64.b64encode(image).decode()}
            for image in pictures["image"].iloc[start : start + 32]
        ]
        status, body = post(server, {"dataframe_records": records})
        assert status == 200, body
        digits += [prediction["digit"] for prediction in body["predictions"]]
    right = [
        d is not None and d == label for d, label in zip(digits, pictures["digit"], strict=True)
    ]
    return pictures.assign(read=digits, right=right)


@pytest.fixture(scope="module")
def readings(scoring_server):
    return read_set(scoring_server, REAL_PICTURES)


@pytest.fixture(scope="module")
def report(scoring_server):
    return read_set(scoring_server, REPORT_PICTURES)


def test_the_report_set_is_read_per_category(report):
    assert len(report) >= 1800 and (report.groupby("category").size() >= 100).all()
    by_category = report.groupby("category")["right"].mean()
    print(f"report set: {report['right'].mean():.4f}\n{by_category.to_string()}")
    assert report["right"].mean() >= MIN_REPORT_OVERALL, by_category.to_string()
    assert (by_category >= MIN_REPORT_PER_CATEGORY).all(), by_category.to_string()


def test_the_report_set_shares_no_digit_with_the_tuning_set():
    def indices(labels):
        files = PictureSetDataset(filepath=str(labels)).load()["file"]
        return {name.rsplit("_", 1)[1] for name in files if name.startswith("real/")}

    assert not indices(REAL_PICTURES) & indices(REPORT_PICTURES)


def test_the_set_is_large_and_varied(readings):
    assert len(readings) >= 372 and readings["category"].nunique() >= 19
    assert readings["file"].is_unique


def test_reads_the_real_picture_set(readings):
    by_category = readings.groupby("category")["right"].mean()
    wrong = readings.loc[~readings["right"], ["file", "digit", "read"]]
    assert readings["right"].mean() >= MIN_OVERALL, wrong.to_string()
    assert (by_category >= MIN_PER_CATEGORY).all(), by_category.to_string()


def test_the_drawn_photos_stay_all_read(readings):
    drawn = readings[readings["category"] == "drawn"]
    assert len(drawn) == 12 and drawn["right"].all(), drawn[["file", "read"]]


def test_blank_pictures_get_a_null_answer_in_their_place(scoring_server):
    """A batch of 20 pictures with 3 blank ones: a 200, 17 digits and 3 "no digit found"."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (300, 200), (240, 240, 235)).save(buffer, format="JPEG")
    blank = base64.b64encode(buffer.getvalue()).decode()
    pictures = PictureSetDataset(filepath=str(REAL_PICTURES)).load().iloc[:17]
    records = [{"image": base64.b64encode(image).decode()} for image in pictures["image"]]
    for at in (0, 9, 19):
        records.insert(at, {"image": blank})
    status, body = post(scoring_server, {"dataframe_records": records})
    assert status == 200, body
    answers = body["predictions"]
    assert len(answers) == 20
    for at in (0, 9, 19):
        assert answers[at] == {"digit": None, "probabilities": None, "error": "no digit found"}
    read = [answer["digit"] for i, answer in enumerate(answers) if i not in (0, 9, 19)]
    assert all(digit in range(10) for digit in read)
    assert np.mean(np.array(read) == pictures["digit"].to_numpy()) >= 0.9


def test_the_client_and_the_request_log_take_a_null_digit(scoring_server, tmp_path):
    import json
    import time

    from click.testing import CliRunner
    from PIL import Image

    from mnist_mlops.serving.client import main

    blank, photo = tmp_path / "blank.png", REAL_PICTURES.parent / "images"
    Image.new("L", (120, 90), 250).save(blank)
    photo = sorted(photo.glob("[0-9]_*"))[0]
    log = scoring_server["request_log"]
    logged = len(log.read_text().splitlines())
    arguments = [str(blank), str(photo), "--url", scoring_server["url"]]
    result = CliRunner().invoke(main, [*arguments, "--token", scoring_server["token"]])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"{blank}: no digit found"
    assert result.stdout.splitlines()[1].startswith(f"{photo}: {photo.name[0]} (")
    deadline = time.monotonic() + 5  # one thread writes the lines, just after the answers
    while len(log.read_text().splitlines()) <= logged and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = json.loads(log.read_text().splitlines()[-1])["rows"]
    assert rows[0] == {
        "digit": None,
        "confidence": None,
        "label": None,
        "mean_intensity": None,
        "ink_fraction": None,
    }
    assert rows[1]["digit"] == int(photo.name[0])
