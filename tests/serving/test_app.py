"""The scoring server over real HTTP: predictions, photos, tokens, bad input, request log."""

import base64
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import PHOTOS
from tests.serving.conftest import post


@pytest.fixture(scope="module")
def images(mnist_raw):
    return mnist_raw["test_images"][:64].astype(float), mnist_raw["test_labels"][:64]


@pytest.mark.parametrize("key", ["inputs", "instances"])
def test_predicts_what_the_model_predicts(scoring_server, decent_model, images, key):
    pixels, _ = images
    status, body = post(scoring_server, {key: pixels.tolist()})
    assert status == 200 and len(body["predictions"]) == 64
    expected = decent_model.predict(pixels.astype(np.float32), verbose=0)
    got = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [p["digit"] for p in body["predictions"]] == expected.argmax(axis=1).tolist()


def test_flat_784_pixel_rows(scoring_server, images):
    pixels = images[0]
    status, body = post(scoring_server, {"inputs": pixels.reshape(64, 784)[:8].tolist()})
    assert status == 200 and len(body["predictions"]) == 8


def test_reads_the_projects_photos(scoring_server):
    records = [{"image": base64.b64encode(p.read_bytes()).decode()} for p in PHOTOS]
    status, body = post(scoring_server, {"dataframe_records": records})
    assert status == 200
    read = [p["digit"] for p in body["predictions"]]
    truth = [int(p.name[0]) for p in PHOTOS]
    assert sum(r == t for r, t in zip(read, truth, strict=True)) >= len(PHOTOS) - 1, (read, truth)


def test_token_is_required_where_data_is(scoring_server, images):
    body = {"inputs": images[0][:1].tolist()}
    assert post(scoring_server, body, token=None)[0] == 401
    status, error = post(scoring_server, body, token="not-the-token")
    assert status == 401 and error == {
        "error_code": "UNAUTHORIZED",
        "message": "missing or wrong bearer token",
    }
    request = urllib.request.Request(scoring_server["url"] + "/metrics")
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(request, timeout=10)


def test_the_bearer_scheme_is_case_insensitive(scoring_server, images):
    body = json.dumps({"inputs": images[0][:1].tolist()}).encode()
    for scheme in ("bearer", "BEARER", "Bearer"):
        request = urllib.request.Request(
            scoring_server["url"] + "/invocations",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"{scheme} {scoring_server['token']}",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


@pytest.mark.parametrize("path", ["/ping", "/health", "/version", "/openapi.json"])
def test_probes_and_descriptions_are_open(scoring_server, path):
    with urllib.request.urlopen(scoring_server["url"] + path, timeout=10) as response:
        assert response.status == 200
        assert "server" not in response.headers  # no software or version to look up
        assert json.load(response)


def test_the_page_route_is_open_and_json_until_a_page_exists(scoring_server):
    from mnist_mlops.serving.app import STATIC

    try:
        with urllib.request.urlopen(scoring_server["url"] + "/", timeout=10) as response:
            assert (STATIC / "index.html").is_file() and response.status == 200
    except urllib.error.HTTPError as error:
        assert not (STATIC / "index.html").is_file()
        assert error.code == 404 and json.load(error)["error_code"] == "NOT_FOUND"


def test_version_names_the_model(scoring_server):
    with urllib.request.urlopen(scoring_server["url"] + "/version", timeout=10) as response:
        assert response.headers["X-Model-Version"] == "1"
        assert json.load(response) == {
            "model_name": "mnist-cnn",
            "model_version": "1",
            "model_uri": "models:/mnist-cnn@production",
            "challenger": None,
        }


def test_return_prepared_gives_the_pixels_the_model_saw(scoring_server, images):
    pixels = images[0][:2]
    body = {"inputs": pixels.tolist(), "params": {"return_prepared": True}}
    status, answer = post(scoring_server, body)
    assert status == 200
    prepared = np.array([p["prepared"] for p in answer["predictions"]])
    np.testing.assert_allclose(prepared, pixels, atol=0.01)
    photo = base64.b64encode(PHOTOS[0].read_bytes()).decode()
    body = {"dataframe_records": [{"image": photo}], "params": {"return_prepared": True}}
    status, answer = post(scoring_server, body)
    prepared = np.array(answer["predictions"][0]["prepared"])
    assert status == 200 and prepared.shape == (28, 28) and prepared.max() > 200
    assert "prepared" not in post(scoring_server, {"inputs": pixels.tolist()})[1]["predictions"][0]


ONE = [[[0] * 28] * 28]


@pytest.mark.parametrize(
    ("body", "raw", "status", "message"),
    [
        (None, b"{not json", 400, "invalid JSON"),
        (None, b"\xff\xfe", 400, "invalid JSON"),
        ({"inputs": [[[0] * 27] * 28]}, None, 400, "expected shape N x 28 x 28"),
        ({"inputs": [[0] * 28] * 28}, None, 400, "wrap one image in a list"),
        ({"inputs": [[["a"] * 28] * 28]}, None, 400, "pixels must be numbers"),
        ({"inputs": "pixels"}, None, 400, "pixels must be numbers"),
        ({"inputs": [[[300] * 28] * 28]}, None, 400, "must be 0-255"),
        ({"inputs": [[[-1] * 28] * 28]}, None, 400, "must be 0-255"),
        (None, b'{"inputs": [[[NaN]]]}', 400, "invalid JSON"),
        (None, json.dumps({"inputs": [[[float("nan")] * 28] * 28]}).encode(), 400, "invalid JSON"),
        (None, b'{"inputs": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, "depth limit"),
        (None, b'{"inputs": ' + b"[" * 1_100 + b"]" * 1_100 + b"}", 400, "depth limit"),
        (None, b'{"inputs": [[[' + b"9" * 5_000 + b"]]]}", 400, "invalid JSON"),
        (None, b'{"inputs": [[[' + b"9" * 400 + b"]]]}", 400, "invalid JSON"),
        ({"inputs": [[[1e30] * 28] * 28]}, None, 400, "must be 0-255"),
        ({"inputs": []}, None, 400, "expected shape"),
        ({"dataframe_records": []}, None, 400, "the batch is empty"),
        ({"dataframe_records": [{"image": "bm90IGFuIGltYWdl"}]}, None, 400, "not a PNG or JPEG"),
        ({"dataframe_records": [{"image": "%%%"}]}, None, 400, "not valid base64"),
        ({"dataframe_records": [{"image": 7}]}, None, 400, "base64 string"),
        ({"dataframe_records": [{"picture": "x"}]}, None, 400, 'expected an "image" column'),
        ({"dataframe_split": {"columns": ["image"], "data": [["a", "b"]]}}, None, 400, "rows of 1"),
        ({"inputs": ONE, "instances": ONE}, None, 400, "exactly one of"),
        ({"inputs": ONE, "params": {"labels": [1, 2]}}, None, 400, "list of 1 digits 0-9"),
        ({"inputs": ONE, "params": {"labels": [10]}}, None, 400, "digits 0-9"),
        ({"inputs": ONE, "params": {"labels": [True]}}, None, 400, "digits 0-9"),
        ({"inputs": ONE, "params": {"labels": [-5]}}, None, 400, "digits 0-9"),
        ({"inputs": ONE, "params": "labels"}, None, 400, "params must be a JSON object"),
        ({"dataframe_records": [{"pixels": [0] * 784, "label": 99}]}, None, 400, "digits 0-9"),
        ({"instances": [{"pixels": [0] * 784, "label": "3"}]}, None, 400, "digits 0-9"),
        (
            {"dataframe_split": {"columns": ["pixels", "label"], "data": [[[0] * 784, 3.5]]}},
            None,
            400,
            "digits 0-9",
        ),
        ([1, 2], None, 400, "JSON object"),
    ],
)
def test_bad_input_gets_a_clear_4xx(scoring_server, body, raw, status, message):
    got, error = post(scoring_server, body, raw=raw)
    assert got == status, error
    assert message in error["message"]
    assert set(error) == {"error_code", "message"} and len(error["message"]) <= 210


def test_the_server_survives_bad_input(scoring_server, images):
    assert post(scoring_server, None, raw=b"{")[0] == 400
    assert post(scoring_server, {"inputs": images[0][:1].tolist()})[0] == 200


def test_scoring_requests_are_logged_refused_ones_too_but_not_unauthorized(scoring_server, images):
    pixels = images[0]
    photo = base64.b64encode(PHOTOS[0].read_bytes()).decode()
    log = scoring_server["request_log"]
    logged = len(log.read_text().splitlines()) if log.exists() else 0  # run alone: no log yet
    post(scoring_server, {"dataframe_records": [{"image": photo, "label": 0}]})
    post(scoring_server, {"inputs": pixels[:3].tolist()})
    post(scoring_server, None, raw=b"{")
    post(scoring_server, {"inputs": pixels[:1].tolist()}, token="wrong")
    post(scoring_server, {"inputs": pixels[:2].tolist()}, path="/nowhere")
    post(scoring_server, {"inputs": pixels[:2].tolist(), "params": {"labels": [7, 2]}})
    deadline = time.monotonic() + 5  # one thread writes the lines, just after the answers
    while len(log.read_text().splitlines()) < logged + 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = log.read_text().splitlines()
    # Earlier tests' refusals may land just after ``logged`` was read: the last four are ours,
    # and the wrong token and the wrong path, sent between the last two, left no line.
    assert len(lines) >= logged + 4
    photo_line, batch_line, refused, labelled = (json.loads(line) for line in lines[-4:])
    assert refused["status"] == 400 and refused["error_code"] == "BAD_REQUEST"
    assert refused["rows"] == [] and refused["model_version"] == "1"
    assert photo_line["status"] == 200 and photo_line["rows"][0]["label"] == 0
    assert photo_line["model_version"] == "1" and photo_line["latency_ms"] > 0
    assert batch_line["batch_size"] == 3 and batch_line["rows"][0]["label"] is None
    row = batch_line["rows"][0]
    assert 0 <= row["confidence"] <= 1 and 0 < row["ink_fraction"] < 1 and row["mean_intensity"] > 0
    assert [row["label"] for row in labelled["rows"]] == [7, 2]


def test_request_notebook_runs_against_the_server(scoring_server, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from tests.conftest import PROJECT_ROOT

    monkeypatch.setenv("MNIST_SERVING_URL", scoring_server["url"])
    monkeypatch.setenv("MNIST_SERVING_TOKEN", scoring_server["token"])
    path = PROJECT_ROOT / "notebooks" / "request_example.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": path.parent}}
    ).execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "digit: 7 (confidence" in printed


def test_client_prints_digit_and_confidence(scoring_server):
    from mnist_mlops.serving.client import main

    photos = [str(p) for p in PHOTOS[:2]]
    arguments = [*photos, "--url", scoring_server["url"], "--token", scoring_server["token"]]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == photos
    assert all(line.endswith("%)") for line in lines)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.png"], "no such file: missing.png"),
        ([str(PHOTOS[0]), "--token", "wrong"], "answered 401"),
        ([str(PHOTOS[0]), "--url", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
    ],
)
def test_client_errors_are_clear(scoring_server, arguments, message):
    from mnist_mlops.serving.client import main

    if "--url" not in arguments:
        arguments = [*arguments, "--url", scoring_server["url"]]
    result = CliRunner(env={"MNIST_SERVING_TOKEN": None}).invoke(main, arguments)
    assert result.exit_code != 0
    assert message in result.stderr
