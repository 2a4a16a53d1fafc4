"""MLflow protocol conformance: the same requests to `mlflow models serve` and to ours, MLflow's
own client class against ours, and a schemathesis run against our OpenAPI description.

No token here: MLflow's server has none, and its client sends no Authorization header.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnist_mlops.serving.process import ScoringProcess, free_port
from tests.conftest import PHOTOS
from tests.serving.conftest import post

PIXELS = [f"pixel{i}" for i in range(784)]


@pytest.fixture(scope="module")
def servers(registry_uri):
    """Ours and MLflow's, both serving models:/mnist-cnn@production, without a token."""
    env = {"MLFLOW_TRACKING_URI": registry_uri, "MNIST_SERVING_TOKEN": ""}
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m",
               "models:/mnist-cnn@production", "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    theirs = ScoringProcess(command, port=port, env=env, ready_timeout_s=300)
    ours = ScoringProcess.for_model("models:/mnist-cnn@production", env=env)
    with theirs, ours:
        yield {
            "mlflow": {"url": theirs.url, "token": None},
            "ours": {"url": ours.url, "token": None, "port": ours.port},
        }


@pytest.fixture(scope="module")
def pixels(mnist_raw) -> np.ndarray:
    return mnist_raw["test_images"][:4].astype(float)


def csv_body(pixels: np.ndarray, labels: list[int]) -> bytes:
    frame = pd.DataFrame(pixels.reshape(len(pixels), 784).astype(int), columns=PIXELS)
    frame["label"] = labels
    return frame.to_csv(index=False).encode()


def requests_of(pixels: np.ndarray) -> dict[str, tuple[str, object]]:
    """Every form of the same images (and a photo) MLflow's scoring server accepts."""
    flat = pixels.reshape(len(pixels), 784).tolist()
    photo = base64.b64encode(PHOTOS[0].read_bytes()).decode()
    labels = [7, 2, 1, 0]
    return {
        "inputs": ("application/json", {"inputs": pixels.tolist()}),
        "inputs, 784 per row": ("application/json", {"inputs": flat}),
        "inputs as columns": ("application/json", {"inputs": {"pixels": pixels.tolist()}}),
        "instances": ("application/json", {"instances": pixels.tolist()}),
        "instances as rows": (
            "application/json",
            {"instances": [{"pixels": image} for image in pixels.tolist()]},
        ),
        "dataframe_split, 784 columns and a label": (
            "application/json",
            {
                "dataframe_split": {
                    "columns": [*PIXELS, "label"],
                    "data": [[*row, label] for row, label in zip(flat, labels, strict=True)],
                }
            },
        ),
        "dataframe_split, image column": (
            "application/json",
            {"dataframe_split": {"columns": ["image"], "data": [[photo]]}},
        ),
        "dataframe_records, image and label": (
            "application/json",
            {"dataframe_records": [{"image": photo, "label": int(PHOTOS[0].name[0])}]},
        ),
        "dataframe_records, pixels column": (
            "application/json",
            {"dataframe_records": [{"pixels": row} for row in flat]},
        ),
        "text/csv with a label column": ("text/csv", csv_body(pixels, labels)),
        "charset=utf-8": ("application/json; charset=utf-8", {"inputs": pixels.tolist()}),
        "wrong content type": ("text/plain", {"inputs": pixels.tolist()}),
    }


def send(server: dict, content_type: str, body: object, path: str = "/invocations"):
    raw = body if isinstance(body, bytes) else None
    return post(server, body, raw=raw, path=path, content_type=content_type)


def test_ours_accepts_and_answers_what_mlflow_does(servers, pixels):
    for name, (content_type, body) in requests_of(pixels).items():
        theirs = send(servers["mlflow"], content_type, body)
        ours = send(servers["ours"], content_type, body)
        assert ours[0] == theirs[0], (name, ours, theirs)
        if theirs[0] != 200:
            continue
        assert len(ours[1]["predictions"]) == len(theirs[1]["predictions"]), name
        for mine, expected in zip(ours[1]["predictions"], theirs[1]["predictions"], strict=True):
            assert mine["digit"] == expected["digit"], name
            np.testing.assert_allclose(mine["probabilities"], expected["probabilities"], atol=1e-5)


def test_query_strings_and_methods_like_mlflow(servers, pixels):
    body = {"inputs": pixels[:1].tolist()}
    for server in (servers["mlflow"], servers["ours"]):
        assert send(server, "application/json", body, path="/invocations?x=1")[0] == 200
    import urllib.error
    import urllib.request

    for server in (servers["mlflow"], servers["ours"]):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server["url"] + "/invocations", timeout=10)
        assert refused.value.code == 405


def test_mlflows_own_client_pings_waits_and_invokes(servers, pixels):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", servers["ours"]["port"])
    client.wait_server_ready(timeout=10)
    client.ping()
    tensor = client.invoke(pixels.astype(np.float32)).get_predictions()
    frame = pd.DataFrame(pixels.reshape(len(pixels), 784), columns=PIXELS)
    table = client.invoke(frame).get_predictions()
    assert len(tensor) == len(table) == len(pixels)
    assert tensor["digit"].tolist() == table["digit"].tolist()


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_description(servers, tmp_path):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    url = servers["ours"]["url"]
    result = subprocess.run(
        [str(schemathesis), "run", f"{url}/openapi.json", "--url", url,
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--max-examples", "25", "--seed", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache stays there
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
