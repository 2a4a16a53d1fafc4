"""batch_predict on a real Spark local-cluster, with the model of a real production server."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.spark import SparkDataset

from mnist_mlops.pipelines.batch_predict import create_pipeline
from mnist_mlops.pipelines.batch_predict.nodes import images_to_table
from mnist_mlops.pipelines.batch_predict.parameters import BatchPredictParameters
from mnist_mlops.serving.pyfunc import log_servable_model
from tests.conftest import workspace

NAME = "batch-cnn"  # its own model in the shared servers


@pytest.fixture(scope="module")
def production(servers, decent_model):
    """The production server, with a version of the decent model under the alias production."""
    production = workspace(servers["production"], "production")
    with production.session() as client:
        mlflow.set_tracking_uri(production.tracking_uri)  # fluent calls: the production server
        mlflow.set_experiment("batch-predict-tests")
        with mlflow.start_run():
            info = log_servable_model(decent_model, registered_model_name=NAME)
        mlflow.set_tracking_uri(None)
        client.set_registered_model_alias(NAME, "production", info.registered_model_version)
    return production


def run_batch_predict(tmp_path, images, production, alias="production"):
    catalog = DataCatalog(
        {
            "scoring_images": MemoryDataset(images),
            "image_table@pandas": ParquetDataset(filepath=str(tmp_path / "table.parquet")),
            "image_table@spark": SparkDataset(filepath=str(tmp_path / "table.parquet")),
            "production_workspace": MemoryDataset(production),
            "params:batch_predict": MemoryDataset(
                BatchPredictParameters(model_name=NAME, alias=alias, partitions=0)
            ),
            "batch_predictions": SparkDataset(
                filepath=str(tmp_path / "predictions.parquet"), save_args={"mode": "overwrite"}
            ),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return pd.read_parquet(tmp_path / "predictions.parquet").sort_values("id")


def test_scores_every_image_as_the_model_does(tmp_path, spark, production, mnist_raw, decent_model):
    images, labels = mnist_raw["test_images"][:3000], mnist_raw["test_labels"][:3000]

    predictions = run_batch_predict(tmp_path, images, production)

    assert predictions["id"].tolist() == list(range(3000))
    expected = decent_model.predict(images.astype(np.float32), verbose=0)
    np.testing.assert_array_equal(predictions["digit"], expected.argmax(axis=1))
    probabilities = np.stack(predictions["probabilities"].to_numpy())
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    np.testing.assert_allclose(predictions["confidence"], expected.max(axis=1), atol=1e-4)
    assert (predictions["digit"] == labels).mean() > 0.97
    assert set(predictions["model_version"]) == {"1"}


def test_without_the_alias_it_says_to_deploy_first(tmp_path, spark, production, mnist_raw):
    with pytest.raises(Exception, match=r"holds the alias 'nowhere'.*deploy"):
        run_batch_predict(tmp_path, mnist_raw["test_images"][:10], production, alias="nowhere")
    assert not (tmp_path / "predictions.parquet").exists()


def test_the_table_needs_28_by_28_bytes():
    with pytest.raises(ValueError, match=r"N x 28 x 28 uint8.*\(5, 784\)"):
        images_to_table(np.zeros((5, 784), dtype=np.uint8))
