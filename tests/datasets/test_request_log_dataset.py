"""RequestLogDataset: the current and rotated request logs, read lazily and in order."""

import json
import os
from collections.abc import Iterator

import pytest
from kedro.io.core import DatasetError

from mnist_mlops.datasets import RequestLogDataset
from mnist_mlops.devservices.stores import GcsStore
from mnist_mlops.pipelines.monitor.nodes import recent_rows
from mnist_mlops.pipelines.monitor.parameters import MonitoringParameters
from mnist_mlops.serving.process import free_port


def request(number: int, status: int = 200) -> str:
    row = {"digit": 1, "confidence": 0.9, "label": None, "mean_intensity": 30.0}
    row["ink_fraction"] = 0.1
    line = {"time": f"t{number}", "status": status, "model_version": "1", "rows": [row]}
    return json.dumps(line) + "\n"


def test_reads_rotated_files_oldest_first_then_the_current_one(tmp_path):
    log = tmp_path / "requests.jsonl"
    (tmp_path / "requests.jsonl.2").write_text(request(0) + request(1))
    (tmp_path / "requests.jsonl.1").write_text(request(2) + "\n")
    log.write_text(request(3) + '{"cut in the midd')  # a server killed mid-write
    (tmp_path / "requests.jsonl.partial").write_text(request(99))  # not a rotated file
    dataset = RequestLogDataset(filepath=str(log))
    records = dataset.load()
    assert isinstance(records, Iterator)  # lazy: nothing is held but what the reader keeps
    assert [r["time"] for r in records] == ["t0", "t1", "t2", "t3"]
    assert dataset.exists()


def test_monitor_keeps_only_its_window(tmp_path):
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(request(n, status=200 if n % 3 else 400) for n in range(30)))
    frame = recent_rows(RequestLogDataset(filepath=str(log)).load(), window_of(5))
    assert frame["time"].tolist() == ["t23", "t25", "t26", "t28", "t29"]


def test_a_missing_log_is_a_clear_error(tmp_path):
    dataset = RequestLogDataset(filepath=str(tmp_path / "requests.jsonl"))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"no request log at .*requests\.jsonl"):
        dataset.load()


def window_of(images: int) -> MonitoringParameters:
    """Monitoring parameters of which ``recent_rows`` reads only the window."""
    return MonitoringParameters.model_construct(window_images=images)


def test_a_folder_log_is_every_part_the_servers_uploaded_in_upload_order(tmp_path):
    """Two writers (as two servers) buffer their lines and upload them as parts on close."""
    from mnist_mlops.serving.request_log import RequestLog

    folder = f"{tmp_path}/requests/"
    first, second = (RequestLog(folder, 1, 1, flush_s=60) for _ in range(2))
    first.write(json.loads(request(0)))
    first.close()  # SIGTERM: what is buffered is uploaded
    second.write(json.loads(request(1)))
    second.write(json.loads(request(2)))
    second.close()
    parts = sorted(path.name for path in (tmp_path / "requests").iterdir())
    assert len(parts) == 2 and all(part.endswith(".jsonl") for part in parts)
    records = RequestLogDataset(filepath=folder).load()
    assert [r["time"] for r in records] == ["t0", "t1", "t2"]


@pytest.mark.skipif(not GcsStore.binary(), reason="needs fake-gcs-server (uv sync)")
def test_servers_write_their_parts_to_an_object_store_and_the_log_reads_them_all(
    tmp_path, monkeypatch
):
    """The GCS emulator of ``kedro workspaces up``, written by two writers and read back."""
    from mnist_mlops.serving.request_log import RequestLog

    store = GcsStore(tmp_path, free_port())
    store.start(("mnist-logs",), dict(os.environ))
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", store.url)
        for number in range(2):
            log = RequestLog("gs://mnist-logs/requests/", 1, 1, flush_s=60)
            log.write(json.loads(request(number)))
            log.close()
        records = RequestLogDataset(filepath="gs://mnist-logs/requests/").load()
        assert [r["time"] for r in records] == ["t0", "t1"]
    finally:
        store.stop()
