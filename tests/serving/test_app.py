"""The scoring server over real HTTP: predictions, photos, tokens, bad input, request log."""

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.conftest import PHOTOS


def post(server, body, token="default", path="/invocations", raw=None):
    token = server["token"] if token == "default" else token
    request = urllib.request.Request(
        server["url"] + path,
        data=raw if raw is not None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


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


def test_token_is_required(scoring_server, images):
    body = {"inputs": images[0][:1].tolist()}
    assert post(scoring_server, body, token=None)[0] == 401
    status, error = post(scoring_server, body, token="not-the-token")
    assert status == 401 and error["error_code"] == "UNAUTHORIZED"
    request = urllib.request.Request(scoring_server["url"] + "/version")
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(request, timeout=10)


def test_version_names_the_model(scoring_server):
    request = urllib.request.Request(
        scoring_server["url"] + "/version",
        headers={"Authorization": f"Bearer {scoring_server['token']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response) == {
            "model_name": "mnist-cnn",
            "model_version": "1",
            "model_uri": "models:/mnist-cnn@production",
        }


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
        (None, b'{"inputs": [[[NaN]]]}', 400, "shape"),
        (None, json.dumps({"inputs": [[[float("nan")] * 28] * 28]}).encode(), 400, "NaN"),
        ({"inputs": []}, None, 400, "expected shape"),
        ({"dataframe_records": []}, None, 400, "non-empty list"),
        ({"dataframe_records": [{"image": "bm90IGFuIGltYWdl"}]}, None, 400, "not a PNG or JPEG"),
        ({"dataframe_records": [{"image": "%%%"}]}, None, 400, "not valid base64"),
        ({"dataframe_records": [{"picture": "x"}]}, None, 400, 'needs an "image"'),
        ({"inputs": ONE, "instances": ONE}, None, 400, "exactly one of"),
        ({"inputs": ONE, "params": {"labels": [1, 2]}}, None, 400, "list of 1 digits 0-9"),
        ({"inputs": ONE, "params": {"labels": [10]}}, None, 400, "list of 1 digits 0-9"),
        ([1, 2], None, 400, "JSON object"),
        (None, b" " * 2_000_001, 413, "over the limit"),
    ],
)
def test_bad_input_gets_a_clear_4xx(scoring_server, body, raw, status, message):
    got, error = post(scoring_server, body, raw=raw)
    assert got == status, error
    assert message in error["message"]


def test_the_server_survives_bad_input(scoring_server, images):
    assert post(scoring_server, None, raw=b"{")[0] == 400
    assert post(scoring_server, {"inputs": images[0][:1].tolist()})[0] == 200


def test_every_request_is_logged(scoring_server, images):
    pixels = images[0]
    photo = base64.b64encode(PHOTOS[0].read_bytes()).decode()
    log = scoring_server["request_log"]
    logged = len(log.read_text().splitlines())
    post(scoring_server, {"dataframe_records": [{"image": photo, "label": 0}]})
    post(scoring_server, {"inputs": pixels[:3].tolist()})
    post(scoring_server, None, raw=b"{")
    post(scoring_server, {"inputs": pixels[:2].tolist(), "params": {"labels": [7, 2]}})
    lines = log.read_text().splitlines()  # each line is written before its answer is sent
    assert len(lines) == logged + 4
    photo_line, batch_line, bad_line, labelled = (json.loads(line) for line in lines[-4:])
    assert photo_line["status"] == 200 and photo_line["rows"][0]["label"] == 0
    assert photo_line["model_version"] == "1" and photo_line["latency_ms"] > 0
    assert batch_line["batch_size"] == 3 and batch_line["rows"][0]["label"] is None
    row = batch_line["rows"][0]
    assert 0 <= row["confidence"] <= 1 and 0 < row["ink_fraction"] < 1 and row["mean_intensity"] > 0
    assert bad_line["status"] == 400 and bad_line["batch_size"] == 0
    assert [row["label"] for row in labelled["rows"]] == [7, 2]


def test_plain_mlflow_models_serve_works_too(registry_uri, decent_model, images):
    """`mlflow models serve -m models:/mnist-cnn@production` serves the same model."""
    import sys

    from mnist_mlops.serving.process import ScoringProcess, free_port

    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m",
               "models:/mnist-cnn@production", "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = ScoringProcess(command, port=port, env={"MLFLOW_TRACKING_URI": registry_uri})
    with server:
        status, body = post({"url": server.url, "token": None}, {"inputs": images[0][:4].tolist()})
        photo = base64.b64encode(PHOTOS[0].read_bytes()).decode()
        photo_status, photo_body = post(
            {"url": server.url, "token": None}, {"dataframe_records": [{"image": photo}]}
        )
    assert status == 200, body
    expected = decent_model.predict(images[0][:4].astype(np.float32), verbose=0).argmax(axis=1)
    assert [p["digit"] for p in body["predictions"]] == expected.tolist()
    assert photo_status == 200 and photo_body["predictions"][0]["digit"] == int(PHOTOS[0].name[0])


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


@pytest.mark.parametrize("token", [None, "cli-token"])
def test_kedro_serve_command(registry_uri, tmp_path, images, token):
    """`kedro serve --env gcp` serves models:/mnist-cnn@production of the production registry."""
    import shutil
    import sys
    from pathlib import Path

    from mnist_mlops.serving.process import ScoringProcess, free_port
    from tests.conftest import PROJECT_ROOT

    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "conf").symlink_to(PROJECT_ROOT / "conf")
    (tmp_path / "src").mkdir()  # Kedro wants it there; the package is installed in the venv
    port = free_port()
    env = {"GCP_MLFLOW_TRACKING_URI": registry_uri, "MNIST_SERVING_TOKEN": token or ""}
    kedro = str(Path(sys.executable).parent / "kedro")
    command = [kedro, "serve", "--env", "gcp", "--port", str(port)]
    with ScoringProcess(command, port=port, env=env, token=token, cwd=tmp_path) as server:
        served = {"url": server.url, "token": token}
        status, body = post(served, {"inputs": images[0][:2].tolist()})
        unauthenticated, _ = post(served, {"inputs": images[0][:2].tolist()}, token=None)
        logged = (tmp_path / "data" / "10_serving" / "requests.jsonl").read_text().splitlines()
    assert status == 200 and len(body["predictions"]) == 2
    assert unauthenticated == (401 if token else 200)
    assert len(logged) == 2


def test_client_prints_digit_and_confidence(scoring_server, capsys):
    from mnist_mlops.serving.client import main

    photos = [str(p) for p in PHOTOS[:2]]
    assert main([*photos, "--url", scoring_server["url"], "--token", scoring_server["token"]]) == 0
    lines = capsys.readouterr().out.splitlines()
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
def test_client_errors_are_clear(scoring_server, capsys, arguments, message):
    from mnist_mlops.serving.client import main

    if "--url" not in arguments:
        arguments = [*arguments, "--url", scoring_server["url"]]
    assert main(arguments) != 0
    assert message in capsys.readouterr().err
