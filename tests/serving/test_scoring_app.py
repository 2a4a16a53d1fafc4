"""The scoring app in process (Starlette's TestClient): routes, token, refusals, headers,
metrics, the request log, canary and shadow, around a stand-in served model.

The stand-in is a real object with what the app calls on a served version (``prepare``, with
the project's own preprocessing, and ``probabilities``): it reads the mean pixel value, so that
an image of 7s is a 7. The app's model followers are given it directly, as their start would
after loading a version; the wire (uvicorn, limits before the app, several workers) and the
real model are tested over HTTP in the other modules.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import orjson
import pytest
import yaml
from mlflow.pyfunc import PythonModel
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mnist_mlops.serving.app import (
    OPENAPI,
    STATIC,
    AppConfig,
    MeasuredApp,
    Scorer,
    create_app,
    error,
)
from mnist_mlops.serving.challenger import MAX_SHADOW_WAIT_S, THREADS, Traffic
from mnist_mlops.serving.model import Download, LoadedModel
from mnist_mlops.serving.parsing import TooLarge
from mnist_mlops.serving.pyfunc import to_pixels
from mnist_mlops.serving.settings import RolloutSettings, ServingLimits, ServingSettings
from tests.conftest import PHOTOS
from tests.serving.bodies import (
    ACCEPTED,
    BUDGET,
    IMAGE,
    JSON,
    REFUSALS,
    b64,
    body,
    picture,
)

PRODUCTION = "models:/mnist-cnn@production"
TOKEN = "in-process-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ONE = body({"inputs": [IMAGE]})
NO_DIGIT = {"digit": None, "probabilities": None, "error": "no digit found"}


class StandInModel:
    """A served version: the logged model's preprocessing, and a digit read from the mean pixel
    value (plus ``shift``) with probability 0.91; NaN for a picture without a digit."""

    def __init__(self, shift: int = 0, failure: Exception | None = None, delay_s: float = 0):
        self.shift, self.failure, self.delay_s = shift, failure, delay_s

    def prepare(self, model_input: Any) -> np.ndarray:
        return to_pixels(model_input, self.probabilities)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        if self.failure is not None:
            raise self.failure
        means = pixels.reshape(len(pixels), -1).mean(axis=1)
        digits = (np.nan_to_num(means).round().astype(int) + self.shift) % 10
        probabilities = np.full((len(pixels), 10), 0.01, np.float32)
        probabilities[np.arange(len(pixels)), digits] = 0.91
        probabilities[np.isnan(means)] = np.nan
        return probabilities


@dataclass
class Served:
    client: TestClient
    scorer: Scorer

    def post(self, content: bytes, content_type: str = JSON, token: str | None = TOKEN):
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post("/invocations", content=content, headers=headers)

    def logged(self) -> list[dict[str, Any]]:
        """The request log's lines (the log is closed: its writer thread has written them)."""
        self.scorer.request_log.close()
        path = Path(str(self.scorer.config.settings.request_log))
        return (
            [orjson.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        )


def scorer_of(app: MeasuredApp) -> Scorer:
    """The worker's scorer: the object its routes are methods of."""
    return next(route.endpoint.__self__ for route in app.app.routes if route.path == "/version")


@pytest.fixture
def serve(tmp_path, monkeypatch) -> Callable[..., Served]:
    """An app serving a stand-in as version 1 (a challenger as version 2 when given)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    started: list[Scorer] = []

    def start(
        model: Any = None,
        challenger: Any = None,
        token: str | None = TOKEN,
        model_uri: str = PRODUCTION,
        limits: dict[str, Any] | None = None,
        **rollout: Any,
    ) -> Served:
        settings = ServingSettings(
            request_log=str(tmp_path / f"requests-{len(started)}.jsonl"),
            limits=ServingLimits(max_image_pixels=BUDGET, **(limits or {})),
            # A challenger's answer is awaited 30 s (unless a test says otherwise): a loaded
            # machine must not turn a canary's answer into production's.
            rollout=RolloutSettings(**{"challenger_timeout_s": 30, **rollout}),
        )
        first = Download(tmp_path, tmp_path, "mnist-cnn", "1")
        app = create_app(AppConfig(settings, model_uri, first, tmp_path, token))
        scorer = scorer_of(app)
        served = model or StandInModel()
        scorer.follower.current = LoadedModel(served, "mnist-cnn", "1", model_uri, tmp_path)
        if challenger is not None:
            uri = "models:/mnist-cnn@canary"
            scorer.challenger.follower.current = LoadedModel(
                challenger, "mnist-cnn", "2", uri, tmp_path
            )
        started.append(scorer)
        return Served(TestClient(app), scorer)

    yield start
    for scorer in started:
        scorer.challenger.close()
        scorer.request_log.close()


def metric(client: TestClient, name: str, **labels: str) -> float:
    """A sample of ``/metrics`` (summed over the labels not given)."""
    text = client.get("/metrics", headers=AUTH).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# Scoring


@pytest.mark.parametrize(("raw", "content_type", "labels", "shape"), ACCEPTED)
def test_every_accepted_form_is_answered_image_by_image(serve, raw, content_type, labels, shape):
    served = serve()
    answer = served.post(raw, content_type)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-model-version"] == "1"
    predictions = answer.json()["predictions"]
    assert len(predictions) == len(labels)
    for prediction in predictions:
        assert set(prediction) == {"digit", "probabilities"}
        assert len(prediction["probabilities"]) == 10
        assert prediction["probabilities"][prediction["digit"]] == 0.91
    if shape is not None:  # pixels of 7s; a picture's digit depends on its reading
        assert [p["digit"] for p in predictions] == [7] * len(labels)
    assert [row["label"] for row in served.logged()[0]["rows"]] == labels


def test_a_project_photo_is_read_off_the_event_loop_and_pixels_on_it(serve):
    on_the_loop = []

    class Recording(StandInModel):
        def prepare(self, model_input):
            try:
                on_the_loop.append(asyncio.get_running_loop() is not None)
            except RuntimeError:  # a worker thread: no event loop runs there
                on_the_loop.append(False)
            return super().prepare(model_input)

    served = serve(model=Recording())
    photo = body({"dataframe_records": [{"image": b64(PHOTOS[0].read_bytes())}]})
    answer = served.post(photo)
    assert answer.status_code == 200 and answer.json()["predictions"][0]["digit"] in range(10)
    assert served.post(ONE).status_code == 200
    assert on_the_loop == [False, True]


def test_a_picture_without_a_digit_gets_a_null_answer_in_its_place(serve):
    served = serve()
    before = metric(served.client, "mnist_serving_predicted_digits_total", digit="none")
    pictures = [picture(), picture(ink=False), picture()]
    labelled = zip(pictures, [1, 4, None], strict=True)
    rows = [{"image": b64(p), "label": label} for p, label in labelled]
    content = body({"dataframe_records": rows, "params": {"return_prepared": True}})
    answer = served.post(content)
    assert answer.status_code == 200, answer.text
    first, blank, last = answer.json()["predictions"]
    assert blank == {**NO_DIGIT, "prepared": None}
    assert first["digit"] is not None and np.array(first["prepared"]).shape == (28, 28)
    assert last["digit"] == first["digit"]
    after = metric(served.client, "mnist_serving_predicted_digits_total", digit="none")
    assert after == before + 1
    row = served.logged()[0]["rows"][1]
    assert row == {
        "digit": None,
        "confidence": None,
        "label": 4,
        "mean_intensity": None,
        "ink_fraction": None,
    }


def test_a_request_with_nothing_readable_is_a_200(serve):
    answer = serve().post(body({"dataframe_records": [{"image": b64(picture(ink=False))}]}))
    assert answer.status_code == 200 and answer.json() == {"predictions": [NO_DIGIT]}


def test_return_prepared_gives_the_pixels_the_model_saw(serve):
    served = serve()
    image = np.arange(784).reshape(28, 28) % 256
    content = body({"inputs": [image.tolist()], "params": {"return_prepared": True}})
    prediction = served.post(content).json()["predictions"][0]
    np.testing.assert_array_equal(prediction["prepared"], image)
    assert "prepared" not in served.post(ONE).json()["predictions"][0]


def test_the_request_log_has_a_line_per_scoring_request_refused_ones_too(serve):
    served = serve()
    served.post(body({"inputs": [IMAGE, IMAGE], "params": {"labels": [7, 2]}}))
    served.post(b"{")
    served.post(ONE, token="wrong")  # refused from its headers: no line
    served.client.post("/nowhere", content=ONE, headers=AUTH)  # no line either
    scored, refused = served.logged()
    assert scored["status"] == 200 and scored["batch_size"] == 2 and scored["role"] == "production"
    assert scored["model_version"] == "1" and scored["latency_ms"] >= scored["scoring_ms"] >= 0
    assert [(r["digit"], r["label"]) for r in scored["rows"]] == [(7, 7), (7, 2)]
    assert scored["rows"][0]["confidence"] == pytest.approx(0.91)
    assert scored["rows"][0]["mean_intensity"] == 7 and scored["rows"][0]["ink_fraction"] == 0
    assert refused["status"] == 400 and refused["error_code"] == "BAD_REQUEST"
    assert refused["rows"] == [] and refused["batch_size"] == 0 and refused["model_version"] == "1"


# Refusals


@pytest.mark.parametrize(("raw", "content_type", "exception", "message"), REFUSALS)
def test_every_bad_body_gets_a_json_refusal_naming_what_is_wrong(
    serve, raw, content_type, exception, message
):
    answer = serve().post(raw, content_type)
    status, code = (
        (413, "REQUEST_ENTITY_TOO_LARGE") if exception is TooLarge else (400, "BAD_REQUEST")
    )
    assert answer.status_code == status and answer.headers["content-type"] == "application/json"
    assert answer.json()["error_code"] == code and message in answer.json()["message"]
    assert set(answer.json()) == {"error_code", "message"}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[[0] * 27] * 28], "expected shape N x 28 x 28 or N x 784, got (1, 28, 27)"),
        (IMAGE, "wrap one image in a list"),
        ([[["a"] * 28] * 28], "pixels must be numbers"),
        ("pixels", "pixels must be numbers in nested lists"),
        ([[[300] * 28] * 28], "pixels must be 0-255 (raw MNIST scale), got 300 to 300"),
        ([[[-1] * 28] * 28], "must be 0-255"),
        ([[[1e30] * 28] * 28], "must be 0-255"),
        ([], "expected shape"),
    ],
)
def test_pixels_the_served_preprocessing_refuses_are_a_400(serve, inputs, message):
    """The version's own preprocessing validates pixels: its refusal is the client's 400."""
    answer = serve().post(body({"inputs": inputs}))
    assert answer.status_code == 400 and answer.json()["error_code"] == "BAD_REQUEST"
    assert message in answer.json()["message"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/json; charset=latin-1", 415),
        ("", 415),
        ("application/json; charset=UTF-8", 200),
        ("Application/JSON", 200),
    ],
)
def test_content_types_like_mlflows_server(serve, content_type, status):
    answer = serve().post(ONE, content_type)
    assert answer.status_code == status
    if status == 415:
        assert answer.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert repr(content_type) in answer.json()["message"]


def test_a_csv_body_with_a_json_content_type_is_refused_as_json(serve):
    answer = serve().post(b"p0,p1\n1,2", JSON)
    assert answer.status_code == 400 and "invalid JSON" in answer.json()["message"]


def test_the_query_string_is_ignored(serve):
    served = serve()
    answer = served.client.post(
        "/invocations?x=1", content=ONE, headers=AUTH | {"Content-Type": JSON}
    )
    assert answer.status_code == 200


def test_a_body_over_the_announced_limit_is_refused_before_it_is_read(serve):
    served = serve(limits={"max_body_bytes": 100})
    answer = served.post(b"x" * 101)
    assert answer.status_code == 413 and answer.headers["connection"] == "close"
    assert answer.json() == {
        "error_code": "REQUEST_ENTITY_TOO_LARGE",
        "message": "body over the limit of 100 bytes",
    }


def asgi_post(app: MeasuredApp, receive: Callable[[], Any]) -> list[dict[str, Any]]:
    """Run one POST /invocations through the ASGI app with the client's side in ``receive``
    (no Content-Length: the body is streamed); what the app sent."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/invocations",
        "raw_path": b"/invocations",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5001),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def answer_of(sent: list[dict[str, Any]]) -> tuple[int, dict[str, bytes], dict[str, Any]]:
    start, content = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), orjson.loads(content)


def test_a_streamed_body_is_refused_once_it_grows_past_the_limit(serve):
    served = serve(token=None, limits={"max_body_bytes": 1000})
    chunks = iter([b"[" * 600] * 3)

    async def receive():
        return {"type": "http.request", "body": next(chunks), "more_body": True}

    status, headers, answer = answer_of(asgi_post(served.client.app, receive))
    assert status == 413 and headers[b"connection"] == b"close"
    assert answer["message"] == "body over the limit of 1000 bytes"
    assert next(chunks, None) is not None  # not read past the limit


def test_a_body_that_stalls_gets_408(serve):
    served = serve(token=None, limits={"body_timeout_s": 0.05})

    async def receive():
        await asyncio.sleep(10)

    status, headers, answer = answer_of(asgi_post(served.client.app, receive))
    assert status == 408 and headers[b"connection"] == b"close"
    assert answer == {
        "error_code": "REQUEST_TIMEOUT",
        "message": "request body not received within 0.05 s",
    }


def test_a_client_that_disconnects_leaves_no_log_line_and_is_counted(serve):
    served = serve(token=None)
    kind = {"kind": "client_disconnected"}
    before = metric(served.client, "mnist_serving_errors_total", **kind)

    async def receive():
        return {"type": "http.disconnect"}

    asgi_post(served.client.app, receive)
    assert metric(served.client, "mnist_serving_errors_total", **kind) == before + 1
    assert served.logged() == []


def test_a_failing_model_is_a_500_without_details_logged_and_counted(serve):
    served = serve(model=StandInModel(failure=RuntimeError("session broke: /secret/path")))
    client = TestClient(served.client.app, raise_server_exceptions=False)
    before = metric(client, "mnist_serving_version_errors_total", version="1", role="answered")
    answer = client.post("/invocations", content=ONE, headers=AUTH | {"Content-Type": JSON})
    assert answer.status_code == 500
    assert answer.json() == {
        "error_code": "INTERNAL_ERROR",
        "message": "the server failed on this request",
    }
    after = metric(client, "mnist_serving_version_errors_total", version="1", role="answered")
    assert after == before + 1
    [line] = served.logged()
    assert line["status"] == 500 and line["error_code"] == "INTERNAL_ERROR"


def test_long_messages_are_cut_short():
    answer = error(400, "BAD_REQUEST", "x" * 500)
    assert len(orjson.loads(answer.body)["message"]) == 203 and "connection" not in answer.headers


# Routes and the token


@pytest.mark.parametrize("path", ["/ping", "/health", "/version", "/openapi.json"])
def test_probes_and_descriptions_are_open_and_name_the_version(serve, path):
    answer = serve().client.get(path)
    assert answer.status_code == 200 and answer.json()
    assert answer.headers["x-model-version"] == "1"


def test_ping_says_ok(serve):
    assert serve().client.get("/ping").json() == {"status": "ok"}


def test_version_names_production_and_the_challenger(serve):
    assert serve().client.get("/version").json() == {
        "model_name": "mnist-cnn",
        "model_version": "1",
        "model_uri": PRODUCTION,
        "challenger": None,
    }
    challenger = serve(challenger=StandInModel()).client.get("/version").json()["challenger"]
    assert challenger == {"model_version": "2", "model_uri": "models:/mnist-cnn@canary"}


def test_a_version_uri_has_no_challenger(serve):
    served = serve(model_uri="models:/mnist-cnn/1", canary_fraction=1.0)
    assert served.scorer.challenger.uri is None and served.scorer.challenger.background() == []


def test_openapi_is_the_shipped_description_of_every_route(serve):
    described = serve().client.get("/openapi.json").json()
    assert described == yaml.safe_load(OPENAPI.read_text())
    assert set(described["paths"]) == MeasuredApp.ENDPOINTS - {"/"}


def test_the_page_and_its_files_are_open(serve):
    client = serve().client
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == (STATIC / "index.html").read_text()
    assert client.get("/static/pad.js").status_code == 200
    missing = client.get("/static/none.js")
    assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"


def test_without_a_page_the_root_is_a_json_404(serve, monkeypatch):
    monkeypatch.setattr("mnist_mlops.serving.app.STATIC", Path("/nonexistent"))
    answer = serve().client.get("/")
    assert answer.status_code == 404
    assert answer.json() == {"error_code": "NOT_FOUND", "message": "no page here yet: GET /"}


def test_unknown_routes_and_methods_are_json_errors(serve):
    client = serve().client
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"error_code": "NOT_FOUND", "message": "Not Found: GET /nowhere"}
    wrong = client.put("/invocations", content=ONE, headers=AUTH)
    assert wrong.status_code == 405 and wrong.json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert wrong.headers["allow"] == "POST" and wrong.headers["x-model-version"] == "1"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic " + TOKEN, TOKEN, "Bearer"])
def test_scoring_and_metrics_need_the_token(serve, authorization):
    client = serve().client
    headers = {"Content-Type": JSON} | ({"Authorization": authorization} if authorization else {})
    for answer in (
        client.post("/invocations", content=ONE, headers=headers),
        client.get("/metrics", headers=headers),
    ):
        assert answer.status_code == 401 and answer.headers["connection"] == "close"
        assert answer.json() == {
            "error_code": "UNAUTHORIZED",
            "message": "missing or wrong bearer token",
        }


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(serve, scheme):
    client = serve().client
    headers = {"Content-Type": JSON, "Authorization": f"{scheme} {TOKEN}"}
    assert client.post("/invocations", content=ONE, headers=headers).status_code == 200


def test_without_a_token_nothing_needs_one(serve):
    served = serve(token=None)
    assert served.post(ONE, token=None).status_code == 200
    assert served.client.get("/metrics").status_code == 200


# Metrics


def test_metrics_count_requests_images_digits_errors_and_feedback(serve):
    served = serve()
    client = served.client

    def counts() -> dict[str, float]:
        return {
            "scored": metric(
                client, "mnist_serving_requests_total", endpoint="/invocations", status="200"
            ),
            "refused": metric(
                client, "mnist_serving_requests_total", endpoint="/invocations", status="400"
            ),
            "other": metric(client, "mnist_serving_requests_total", endpoint="other", status="404"),
            "timed": metric(client, "mnist_serving_request_seconds_count", endpoint="/invocations"),
            "images": metric(client, "mnist_serving_images_total"),
            "sevens": metric(client, "mnist_serving_predicted_digits_total", digit="7"),
            "bad": metric(client, "mnist_serving_errors_total", kind="bad_request"),
            "labelled": metric(
                client, "mnist_serving_version_labelled_images_total", version="1", role="answered"
            ),
            "correct": metric(
                client, "mnist_serving_version_correct_images_total", version="1", role="answered"
            ),
            "answered": metric(
                client, "mnist_serving_version_requests_total", version="1", role="answered"
            ),
        }

    before = counts()
    served.post(body({"inputs": [IMAGE, IMAGE, IMAGE], "params": {"labels": [7, 1, None]}}))
    served.post(b"{")
    client.get("/nowhere")
    after = counts()
    assert {key: after[key] - before[key] for key in before} == {
        "scored": 1,
        "refused": 1,
        "other": 1,
        "timed": 2,
        "images": 3,
        "sevens": 3,
        "bad": 1,
        "labelled": 2,
        "correct": 1,
        "answered": 1,
    }
    answer = client.get("/metrics", headers=AUTH)
    assert answer.headers["content-type"].startswith("text/plain")


# Canary and shadow


def test_the_canary_answers_its_share_and_names_its_version(serve):
    served = serve(challenger=StandInModel(shift=1), canary_fraction=1.0)
    before = metric(
        served.client, "mnist_serving_version_requests_total", version="2", role="answered"
    )
    answer = served.post(ONE)
    assert answer.status_code == 200 and answer.json()["predictions"][0]["digit"] == 8
    assert answer.headers.get_list("x-model-version") == ["2"]
    after = metric(
        served.client, "mnist_serving_version_requests_total", version="2", role="answered"
    )
    assert after == before + 1
    [line] = served.logged()
    assert line["model_version"] == "2" and line["role"] == "canary" and "shadow" not in line


def test_production_answers_outside_the_canarys_share(serve):
    served = serve(challenger=StandInModel(shift=1), canary_fraction=0.0)
    answer = served.post(ONE)
    assert (
        answer.json()["predictions"][0]["digit"] == 7 and answer.headers["x-model-version"] == "1"
    )
    assert served.logged()[0]["role"] == "production"


@pytest.mark.parametrize(
    ("challenger", "logged_error"),
    [
        (StandInModel(failure=RuntimeError("broken")), "RuntimeError: broken"),
        (StandInModel(delay_s=0.5), "timed out after 0.05 s"),
    ],
)
def test_a_failing_canary_is_covered_by_production_and_logged(serve, challenger, logged_error):
    served = serve(challenger=challenger, canary_fraction=1.0, challenger_timeout_s=0.05)
    labels = {"version": "2", "role": "answered"}
    before = metric(served.client, "mnist_serving_version_errors_total", **labels)
    answer = served.post(ONE)
    assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
    assert metric(served.client, "mnist_serving_version_errors_total", **labels) == before + 1
    [line] = served.logged()
    assert line["model_version"] == "1" and line["role"] == "production"
    assert line["challenger_error"] == {"model_version": "2", "error": logged_error}


class HungModel(StandInModel):
    """A version whose scoring never returns until the test releases it."""

    def __init__(self) -> None:
        super().__init__(shift=1)
        self.release = threading.Event()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        self.release.wait()
        return super().probabilities(pixels)


def test_a_hung_canary_is_covered_by_production_once_it_times_out(serve):
    hung = HungModel()
    served = serve(challenger=hung, canary_fraction=1.0, challenger_timeout_s=0.1)
    try:
        # Each of the challenger's threads hangs in turn; then the canary is not even waited
        # for in place, and every request is still answered by production after the timeout.
        answers = [served.post(ONE) for _ in range(THREADS + 2)]
    finally:
        hung.release.set()
    assert [a.headers["x-model-version"] for a in answers] == ["1"] * (THREADS + 2)
    assert [a.json()["predictions"][0]["digit"] for a in answers] == [7] * (THREADS + 2)
    errors = [line["challenger_error"]["error"] for line in served.logged()]
    assert errors == ["timed out after 0.1 s"] * (THREADS + 2)


def test_the_shadow_waits_for_a_quiet_worker():
    async def scenario() -> None:
        traffic = Traffic()
        traffic.started()
        waiting = asyncio.create_task(traffic.quiet(0.5))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # a request is in flight
        traffic.ended()
        await asyncio.sleep(0)
        assert not waiting.done()  # answered just now
        await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - traffic.last >= 0.5

    asyncio.run(scenario())


def test_a_worker_that_is_never_quiet_still_shadows(serve):
    """Saturated (a request always in flight), the shadow still scores one queued request per
    ``MAX_SHADOW_WAIT_S``: the rollout needs readings to judge the challenger by."""
    served = serve(challenger=StandInModel(shift=1), shadow_fraction=1.0)
    assert served.post(ONE).status_code == 200

    challenger, written = served.scorer.challenger, []
    write = challenger.write
    challenger.write = lambda record: (written.append(record), write(record))

    async def saturated() -> float:
        served.scorer.traffic.started()  # never ends while the shadow waits
        started = time.monotonic()
        shadowing = asyncio.create_task(challenger._shadow_loop())
        while not written and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        shadowing.cancel()
        return time.monotonic() - started

    waited = asyncio.run(saturated())
    [line] = served.logged()
    assert line["shadow"]["model_version"] == "2"
    assert MAX_SHADOW_WAIT_S * 0.9 <= waited < 5


def test_input_production_refuses_too_is_not_the_canarys_error(serve):
    served = serve(challenger=StandInModel(), canary_fraction=1.0)
    labels = {"version": "2", "role": "answered"}
    before = metric(served.client, "mnist_serving_version_errors_total", **labels)
    assert served.post(body({"inputs": [[[300] * 28] * 28]})).status_code == 400
    assert metric(served.client, "mnist_serving_version_errors_total", **labels) == before


async def shadow_everything_queued(scorer: Scorer) -> None:
    """Run the worker's shadow until its queue is empty and nothing is being scored."""
    shadowing = asyncio.create_task(scorer.challenger._shadow_loop())
    while not scorer.challenger.queue.empty() or scorer.challenger.pending:
        await asyncio.sleep(0.01)
    shadowing.cancel()


def shadow_counts(client: TestClient) -> tuple[float, float]:
    """Images shadowed by version 2, and those it read as production did."""
    return (
        metric(client, "mnist_serving_shadow_images_total", version="2"),
        metric(client, "mnist_serving_shadow_agreeing_images_total", version="2"),
    )


def test_a_shadowed_request_is_logged_with_the_challengers_reading(serve):
    served = serve(challenger=StandInModel(shift=1), shadow_fraction=1.0)
    before = shadow_counts(served.client)
    answer = served.post(body({"inputs": [IMAGE, IMAGE]}))
    assert answer.headers["x-model-version"] == "1"
    assert [p["digit"] for p in answer.json()["predictions"]] == [7, 7]
    assert served.scorer.challenger.queue.qsize() == 1  # logged once shadowed, not before
    asyncio.run(shadow_everything_queued(served.scorer))
    [line] = served.logged()
    assert line["model_version"] == "1" and line["shadow"]["model_version"] == "2"
    assert [(r["digit"], r["shadow_digit"]) for r in line["rows"]] == [(7, 8), (7, 8)]
    after = shadow_counts(served.client)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 0)  # two pairs, none agreeing


def test_a_full_shadow_queue_drops_the_shadow_not_the_answer(serve):
    served = serve(challenger=StandInModel(), shadow_fraction=1.0, shadow_queue=1)
    before = metric(served.client, "mnist_serving_shadow_dropped_total")
    assert [served.post(ONE).status_code for _ in range(2)] == [200, 200]
    assert metric(served.client, "mnist_serving_shadow_dropped_total") == before + 1
    served.scorer.challenger.close()  # at shutdown, what waited for the shadow is logged too
    assert [line["shadow"] for line in served.logged()] == [
        {"model_version": "2", "dropped": True},
        {"model_version": "2", "dropped": True},
    ]


# Start and stop


class SavedStandIn(PythonModel, StandInModel):
    """The stand-in as an MLflow pyfunc, for the worker's own start: MLflow saves and loads it."""

    def predict(
        self, context: Any, model_input: list[list[float]], params: dict | None = None
    ) -> list[int]:
        return self.probabilities(self.prepare(model_input)).argmax(axis=1).tolist()


def test_a_worker_loads_its_version_at_start_and_writes_its_log_at_shutdown(tmp_path):
    model_path = tmp_path / "model"
    mlflow.pyfunc.save_model(str(model_path), python_model=SavedStandIn(), pip_requirements=[])
    log = tmp_path / "requests.jsonl"
    settings = ServingSettings(request_log=str(log), onnx_threads=0)
    first = Download(tmp_path, model_path, "mnist-cnn", "1")
    app = create_app(AppConfig(settings, "models:/mnist-cnn/1", first, tmp_path))
    with TestClient(app) as client:  # runs the app's start-up and shutdown
        assert client.get("/version").json()["model_uri"] == "models:/mnist-cnn/1"
        answer = client.post("/invocations", content=ONE, headers={"Content-Type": JSON})
        assert answer.json()["predictions"][0]["digit"] == 7
    assert [orjson.loads(line)["status"] for line in log.read_text().splitlines()] == [200]
