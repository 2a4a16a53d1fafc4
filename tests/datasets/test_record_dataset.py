import json

import pytest
from kedro.io import DatasetError

from mnist_mlops.datasets import RecordDataset
from mnist_mlops.registry.records import DeployCandidate, PushedVersion

PUSHED = "mnist_mlops.registry.records.PushedVersion"


def test_round_trip_keeps_the_type_and_writes_plain_json(tmp_path):
    dataset = RecordDataset(filepath=str(tmp_path / "registry" / "pushed.json"), record=PUSHED)
    record = PushedVersion(
        name="mnist-cnn", version=3, lineage="s#mnist-cnn/5", already_pushed=True
    )
    dataset.save(record)

    assert dataset.load() == record and isinstance(dataset.load(), PushedVersion)
    assert json.loads((tmp_path / "registry" / "pushed.json").read_text())["version"] == "3"
    assert not list(tmp_path.glob("registry/*.partial"))


def test_a_file_edited_into_an_invalid_record_is_refused_on_load(tmp_path):
    path = tmp_path / "pushed.json"
    path.write_text(json.dumps({"name": "mnist-cnn", "version": "latest"}))
    with pytest.raises(DatasetError, match=r"pushed.json is not a valid PushedVersion"):
        RecordDataset(filepath=str(path), record=PUSHED).load()


def test_refuses_to_save_another_record_type(tmp_path):
    dataset = RecordDataset(filepath=str(tmp_path / "pushed.json"), record=PUSHED)
    with pytest.raises(DatasetError, match="expected a PushedVersion to save, got DeployCandidate"):
        dataset.save(DeployCandidate(name="m", action="skip"))
    assert not (tmp_path / "pushed.json").exists()


@pytest.mark.parametrize("record", ["mnist_mlops.registry.records.Nope", "json", "builtins.dict"])
def test_a_record_that_is_not_a_pydantic_model_is_a_configuration_error(tmp_path, record):
    with pytest.raises(DatasetError, match="is not an importable pydantic model"):
        RecordDataset(filepath=str(tmp_path / "x.json"), record=record)
