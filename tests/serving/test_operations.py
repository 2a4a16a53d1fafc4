"""`kedro serve` as operations run it: two workers, limits, metrics, a rotating request log,
following the production alias through a deploy and a rollback, and a graceful SIGTERM.

One server for the whole module (short timeouts and poll_s=1 through --params), on its own
copy of the registry so that moving its alias disturbs no other test. SIGTERM is the last test.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mnist_mlops.serving.process import ScoringProcess, free_port
from mnist_mlops.workspaces import Workspace
from tests.conftest import PROJECT_ROOT
from tests.serving.bodies import BMP, png_header, records
from tests.serving.conftest import TOKEN, post, raw_exchange, read_until_closed, status_and_json

ONE = json.dumps({"inputs": [[[0] * 28] * 28]}).encode()
PARAMS = {
    "serving.poll_s": 1,
    "serving.limits.header_timeout_s": 1,
    "serving.limits.body_timeout_s": 1,
    "serving.limits.keepalive_timeout_s": 1,
    "serving.limits.linger_timeout_s": 2,
    "serving.limits.max_image_pixels": 1_000_000,
    "serving.request_log_max_bytes": 20_000,
    "serving.request_log_backups": 9,
}


def kedro_project(path: Path) -> Path:
    """A folder ``kedro`` accepts as the project, using this checkout's conf."""
    shutil.copy(PROJECT_ROOT / "pyproject.toml", path)
    (path / "conf").symlink_to(PROJECT_ROOT / "conf")
    (path / "src").mkdir()  # Kedro wants it there; the package is installed in the venv
    return path


def kedro_serve(project: Path, port: int, *args: str) -> list[str]:
    kedro = str(Path(sys.executable).parent / "kedro")
    return [kedro, "serve", "--env", "gcp", "--port", str(port), *args]


@pytest.fixture(scope="module")
def registry(registry_uri, tmp_path_factory):
    """A copy of the shared registry with version 2 (the same model) and version 3 (broken)."""
    root = tmp_path_factory.mktemp("following-registry")
    shutil.copy(registry_uri.removeprefix("sqlite:///"), root / "mlflow.db")
    uri = f"sqlite:///{root}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = Path(mlflow.artifacts.download_artifacts("models:/mnist-cnn/1", dst_path=root))
    finally:
        mlflow.set_tracking_uri(previous)
    client.create_model_version("mnist-cnn", source=str(model))
    broken = shutil.copytree(model, root / "broken")
    (broken / "python_model.pkl").write_bytes(b"not a pickle")
    client.create_model_version("mnist-cnn", source=str(broken))
    return {"uri": uri, "client": client}


def test_a_server_and_a_workspace_download_leave_no_temporary_file(registry, tmp_path, monkeypatch):
    """The server's log (this process) and its downloads (the server's) while it runs, nothing
    once it has stopped; a workspace's ``load_pyfunc`` leaves nothing either."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    env = {"MLFLOW_TRACKING_URI": registry["uri"], "TMPDIR": str(temporary)}

    def left() -> list[str]:
        # ONNX Runtime keeps its telemetry session id in $TMPDIR/.ses on purpose, across runs.
        return sorted(path.name for path in temporary.iterdir() if path.name != ".ses")

    with ScoringProcess.for_model("models:/mnist-cnn/1", env=env, ready_timeout_s=300):
        made = left()
    assert {name.split("-")[0] for name in made} == {"mnist", "scoring"}, made  # seen made here
    assert left() == []

    model = Workspace("production", registry["uri"]).load_pyfunc("models:/mnist-cnn/1")
    assert left() == []
    assert model.predict(np.zeros((1, 28, 28), dtype=np.float32))["digit"].size == 1


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory):
    """``kedro serve --env gcp --workers 2 --params ...`` with a token."""
    project = kedro_project(tmp_path_factory.mktemp("project"))
    port = free_port()
    params = ",".join(f"{key}={value}" for key, value in PARAMS.items())
    log = project / "logs" / "requests.jsonl"
    env = {
        "GCP_MLFLOW_TRACKING_URI": registry["uri"],
        "MNIST_SERVING_TOKEN": TOKEN,
        "MNIST_REQUEST_LOG": str(log),
    }
    command = kedro_serve(project, port, "--workers", "2", "--params", params)
    # Two workers each import MLflow: on a busy 2-core machine that took over 120 s.
    server = ScoringProcess(
        command, port=port, env=env, token=TOKEN, cwd=project, ready_timeout_s=300
    )
    with server:
        yield {"url": server.url, "port": port, "token": TOKEN, "process": server, "log": log}


def test_an_unknown_setting_stops_kedro_serve_and_is_named(tmp_path, registry):
    project = kedro_project(tmp_path)
    env = {**os.environ, "GCP_MLFLOW_TRACKING_URI": registry["uri"]}
    command = kedro_serve(project, free_port(), "--params", "serving.limits.bogus=1")
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "serving.limits.bogus" in result.stderr and "Extra inputs" in result.stderr


def test_start_up_is_logged_in_phases_and_imports_no_tensorflow(served):
    wait_for_versions(served, 1.0)
    pattern = r"\[(\d+)\] mnist_mlops.serving.startup: start-up: ([a-z -]+) [0-9.]+ s"
    deadline = time.monotonic() + 60  # a worker may answer before its "listening" line is out
    while len(phases := re.findall(pattern, served["process"].log_path.read_text())) < 10:
        assert time.monotonic() < deadline, phases
        time.sleep(0.5)
    command = {phase for pid, phase in phases if int(pid) == served["process"].process.pid}
    assert command == {"cli", "configuration", "registry lookup", "download"}, phases
    workers = [phase for pid, phase in phases if int(pid) != served["process"].process.pid]
    assert sorted(workers) == sorted(["load", "warm-up", "listening"] * 2), phases
    group = served["process"].process.pid  # the server's processes: its group (own session)
    forked = []  # the fork server and the workers forked from it (they keep its command line)
    for pid in processes_of_group(group):
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "tensorflow" not in maps, f"process {pid} of the server loaded TensorFlow"
        if "forkserver" in Path(f"/proc/{pid}/cmdline").read_text():
            forked.append(maps)
    # What a worker's first picture needs is there before it: no 0.2 s of imports.
    assert len(forked) == 3
    for maps in forked:
        assert "scipy/ndimage/_nd_image" in maps and "scipy/spatial/_qhull" in maps


def processes_of_group(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:
            found.append(int(entry.name))
    assert len(found) >= 3, found  # the command, its workers (and the fork server)
    return found


def test_clients_still_sending_a_refused_body_read_their_answer(served):
    """A body 6x the limit (8 MiB): the server answers from the headers, and reads and
    discards the rest (lingering close), so that clients which read only once they have sent
    everything get their answer rather than a reset connection."""
    body, url = b"0" * (6 * 8 * 1024 * 1024), served["url"] + "/invocations"
    token = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    answer = requests.post(url, data=body, headers=token, timeout=60)
    assert answer.status_code == 413
    assert answer.json()["message"] == "body over the limit of 8388608 bytes"
    for headers, status in ((token, 413), ({}, 401)):
        connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
        connection.request("POST", "/invocations", body, headers)
        response = connection.getresponse()
        assert response.status == status and json.loads(response.read())["error_code"]
        connection.close()


def test_a_client_that_sends_forever_is_cut_off_within_the_linger_bound(served):
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=30) as sock:
        sock.sendall(request_head(length=10**12))
        started = time.monotonic()
        with pytest.raises(OSError):  # reset, or broken pipe, once the server closes
            while time.monotonic() - started < 30:
                sock.sendall(b"0" * 65536)
                time.sleep(0.001)
    assert time.monotonic() - started < 10  # linger_timeout_s: 2


@pytest.mark.parametrize(
    ("model_uri", "error"),
    [
        ("models:/mnist-cnn@nowhere", "alias nowhere not found"),  # the download fails
        ("models:/mnist-cnn/3", "a worker could not start"),  # the load fails (not a pickle)
    ],
)
def test_a_first_version_that_cannot_be_served_stops_kedro_serve(
    tmp_path, registry, model_uri, error
):
    project = kedro_project(tmp_path)
    env = {**os.environ, "GCP_MLFLOW_TRACKING_URI": registry["uri"]}
    command = kedro_serve(project, free_port(), "--workers", "2", "--model-uri", model_uri)
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert error in " ".join(result.stderr.split()), result.stderr[-2000:]


def request_head(path: str = "/invocations", length: int = len(ONE), token: str | None = TOKEN):
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}"] + ([f"Authorization: Bearer {token}"] if token else [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def timed_exchange(port: int, data: bytes, wait_s: float = 5) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, body = status_and_json(raw_exchange(port, data, wait_s=wait_s))
    return status, body, time.monotonic() - started


def test_slow_or_missing_headers_get_408_and_are_closed(served):
    status, body, took = timed_exchange(served["port"], b"POST /invocations HTTP/1.1\r\nHo")
    assert status == 408 and body["error_code"] == "REQUEST_TIMEOUT" and took < 10
    status, _, took = timed_exchange(served["port"], b"")  # connects, sends nothing
    assert status == 408 and took < 10


def test_a_stalled_body_gets_408_within_the_timeout(served):
    status, body, took = timed_exchange(served["port"], request_head(length=1000) + b"0123456789")
    assert status == 408 and "not received within 1" in body["message"] and took < 10


def test_no_token_is_refused_from_the_headers_without_waiting_for_the_body(served):
    head = request_head(length=1000, token=None)
    status, body = status_and_json(raw_exchange(served["port"], head + b"0123456789"))
    # A server that waited for the 990 missing bytes would have answered 408 (body timeout).
    assert status == 401 and body["error_code"] == "UNAUTHORIZED"


def test_an_idle_keep_alive_connection_is_closed(served):
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=15) as sock:
        sock.sendall(request_head() + ONE)
        started = time.monotonic()
        response = read_until_closed(sock)  # returns when the server closes (or after 15 s)
    assert response.startswith(b"HTTP/1.1 200") and time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (b"POST /invocations HTTP/1.1\r\nContent-Length: \xc2\xb2\r\n\r\n", 400, "BAD_REQUEST"),
        (request_head()[:-2] + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431, "REQUEST_HEADER"),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", 414, "REQUEST_URI_TOO_LONG"),
        (request_head(length=100_000_000), 413, "REQUEST_ENTITY_TOO_LARGE"),
        (b"PUT /invocations HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
        (b"OPTIONS /invocations HTTP/1.1\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
        (b"GET /invocations HTTP/1.1\r\n\r\n", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_malformed_requests_get_json_errors(served, head, status, code):
    response = raw_exchange(served["port"], head, wait_s=3)
    got, body = status_and_json(response)
    assert got == status and body["error_code"].startswith(code), body
    assert b"\r\nserver:" not in response.lower()


def test_head_of_invocations_is_405(served):
    response = raw_exchange(served["port"], b"HEAD /invocations HTTP/1.1\r\n\r\n", wait_s=3)
    assert response.startswith(b"HTTP/1.1 405")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (records(png_header(30_000, 30_000)), 413, "more than 1000000 pixels"),
        (records(png_header(1000, 600), png_header(1000, 600)), 413, "more than 1000000 pixels"),
        (records(BMP), 400, "not a PNG or JPEG"),
    ],
)
def test_images_over_the_pixel_budget_are_refused_before_decoding(served, body, status, message):
    """``serving.limits.max_image_pixels`` given to ``kedro serve --params`` is the budget."""
    got, error = post(served, None, raw=body)
    assert got == status and message in error["message"], error


def metric_samples(served) -> dict[str, list]:
    connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=10)
    connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = connection.getresponse().read().decode()
    connection.close()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples, name, **labels) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(key) == value for key, value in labels.items())
    )


def score_on_fresh_connections(served, count: int, threads: int = 4, body=ONE) -> list[int]:
    """Single-image requests, each on a new connection (so both workers get some)."""
    statuses: list[int] = []

    def client() -> None:
        for _ in range(count // threads):
            connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=10)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
            connection.request("POST", "/invocations", body, headers)
            statuses.append(connection.getresponse().status)
            connection.close()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


def test_metrics_add_up_across_workers(served):
    name = "mnist_serving_requests_total"
    wait_for_versions(served, 1.0)  # the second worker may still be loading (0 until it is)
    before = metric_samples(served)
    assert score_on_fresh_connections(served, 40) == [200] * 40
    post(served, None, raw=b"{")
    deadline = time.monotonic() + 10  # a request is counted just after its answer is sent
    while True:
        after = metric_samples(served)
        scored = total(after, name, endpoint="/invocations", status="200") - total(
            before, name, endpoint="/invocations", status="200"
        )
        if scored == 40 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert scored == 40
    images = total(after, "mnist_serving_images_total") - total(
        before, "mnist_serving_images_total"
    )
    assert images == 40
    assert total(after, "mnist_serving_errors_total", kind="bad_request") > total(
        before, "mnist_serving_errors_total", kind="bad_request"
    )
    versions = {s.labels["pid"]: s.value for s in after["mnist_serving_model_version"]}
    assert list(versions.values()) == [1.0, 1.0], versions  # one line per worker
    assert total(after, "mnist_serving_request_seconds_count", endpoint="/invocations") > 40


def test_the_request_log_rotates_and_no_line_is_lost_or_mixed(served):
    log: Path = served["log"]
    marked = json.dumps({"inputs": [[[0] * 28] * 28], "params": {"labels": [7]}}).encode()
    statuses = score_on_fresh_connections(served, 200, threads=8, body=marked)
    assert statuses == [200] * 200

    def marked_lines() -> int:  # every line parses: none was cut or mixed with another
        rows = (json.loads(line)["rows"] for line in log_lines(log))
        return sum(bool(r) and r[0]["label"] == 7 for r in rows)  # refused requests: no rows

    deadline = time.monotonic() + 10
    while marked_lines() < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked_lines() == 200
    rotated = sorted(log.parent.glob("requests.jsonl.*"))
    # a file rotates once a line would take it past 20,000 bytes: at most one line over
    assert rotated and all(path.stat().st_size <= 20_500 for path in [log, *rotated])


def log_lines(log: Path) -> list[str]:
    files = sorted(log.parent.glob("requests.jsonl.[0-9]*"), key=lambda p: -int(p.suffix[1:]))
    return [
        line for path in [*files, log] if path.exists() for line in path.read_text().splitlines()
    ]


def served_versions(served) -> list[float]:
    return [s.value for s in metric_samples(served)["mnist_serving_model_version"]]


def wait_for_versions(served, version: float, timeout_s: float = 120) -> None:
    """Until every worker serves ``version`` (poll_s + load time: seconds on a quiet machine;
    20 s was seen under a load average of 27, hence the generous bound)."""
    started = time.monotonic()
    while served_versions(served) != [version, version]:
        assert time.monotonic() - started < timeout_s, served_versions(served)
        time.sleep(0.2)


def test_deploy_and_rollback_under_load_fail_no_request(served, registry):
    client, failures, done = registry["client"], [], threading.Event()
    count = [0]

    def load() -> None:
        while not done.is_set():
            try:
                statuses = score_on_fresh_connections(served, 4, threads=1)
                failures.extend(s for s in statuses if s != 200)
                count[0] += len(statuses)
            except OSError as exc:
                failures.append(repr(exc))

    loaders = [threading.Thread(target=load) for _ in range(3)]
    for loader in loaders:
        loader.start()
    try:
        client.set_registered_model_alias("mnist-cnn", "production", "2")  # deploy
        wait_for_versions(served, 2.0)
        client.set_registered_model_alias("mnist-cnn", "production", "1")  # rollback
        wait_for_versions(served, 1.0)
    finally:
        done.set()
        for loader in loaders:
            loader.join()
    assert failures == [] and count[0] > 20
    downloads = server_downloads(served)
    assert not list(downloads.glob("v2-*")), "the download of version 2 was not removed"


def server_downloads(served) -> Path:
    found = re.search(r"downloads in (\S+)", served["process"].log_path.read_text())
    assert found, "the server did not log its download folder"
    return Path(found.group(1))


def test_a_version_that_fails_to_load_is_not_swapped_in(served, registry):
    before = total(metric_samples(served), "mnist_serving_model_swaps_failed_total")
    registry["client"].set_registered_model_alias("mnist-cnn", "production", "3")
    try:
        deadline = time.monotonic() + 20
        while total(metric_samples(served), "mnist_serving_model_swaps_failed_total") < before + 2:
            assert time.monotonic() < deadline, "no failed swap was counted"
            time.sleep(0.2)
        assert served_versions(served) == [1.0, 1.0]
        assert score_on_fresh_connections(served, 8) == [200] * 8
    finally:
        registry["client"].set_registered_model_alias("mnist-cnn", "production", "1")


def test_a_client_that_disconnects_is_one_log_line(served):
    log = served["process"].log_path
    before = log.read_text().count("disconnected")
    with socket.create_connection(("127.0.0.1", served["port"])) as sock:
        sock.sendall(request_head(length=1000) + b"0123")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while log.read_text().count("disconnected") == before and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert text.count("disconnected") == before + 1 and "Traceback" not in text


def test_a_worker_that_dies_is_replaced_and_nothing_else_is_lost(served):
    """The supervisor pings its workers every 5 s, but sees one that exited without a ping."""
    log = served["process"].log_path
    pattern = r"\[(\d+)\] mnist_mlops.serving.startup: start-up: listening"
    workers = set(re.findall(pattern, log.read_text()))
    os.kill(int(min(workers)), signal.SIGKILL)
    deadline = time.monotonic() + 120  # the new worker loads and warms the version first
    while len(set(re.findall(pattern, log.read_text())) - workers) < 1:
        assert time.monotonic() < deadline, "no worker replaced the killed one"
        time.sleep(0.2)
    with requests.Session() as session:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        answers = [
            session.post(f"{served['url']}/invocations", data=ONE, headers=headers)
            for _ in range(20)
        ]
    assert [answer.status_code for answer in answers] == [200] * 20


def test_sigterm_finishes_the_request_in_flight_and_exits_0(served):
    """Last test of the module: it stops the server."""
    process = served["process"].process
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=10) as sock:
        sock.sendall(request_head() + ONE[:100])
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(ONE[100:])
        response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert process.wait(timeout=20) == 0
