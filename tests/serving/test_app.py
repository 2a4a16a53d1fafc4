"""The scoring server over real HTTP with a trained model: its predictions and photo readings,
open probes, the version it names, the notebook and the client. The app's routes, token,
refusals and request log are tested in process (``test_scoring_app.py``)."""

import base64
import json
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


@pytest.mark.parametrize("path", ["/ping", "/health", "/version", "/openapi.json"])
def test_probes_and_descriptions_are_open(scoring_server, path):
    with urllib.request.urlopen(scoring_server["url"] + path, timeout=10) as response:
        assert response.status == 200
        assert "server" not in response.headers  # no software or version to look up
        assert json.load(response)


def test_version_names_the_model(scoring_server):
    with urllib.request.urlopen(scoring_server["url"] + "/version", timeout=10) as response:
        assert response.headers["X-Model-Version"] == "1"
        assert json.load(response) == {
            "model_name": "mnist-cnn",
            "model_version": "1",
            "model_uri": "models:/mnist-cnn@production",
            "challenger": None,
        }


ONE = [[[0] * 28] * 28]


def test_the_server_survives_bad_input(scoring_server, images):
    assert post(scoring_server, None, raw=b"{")[0] == 400
    assert post(scoring_server, {"inputs": images[0][:1].tolist()})[0] == 200


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
