"""Spark starts only when a node to run needs it."""

import pytest
from kedro.framework.startup import bootstrap_project

from mnist_mlops.pipeline_registry import register_pipelines
from mnist_mlops.spark.session import needs_spark
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def pipelines():
    bootstrap_project(PROJECT_ROOT)  # find_pipelines needs the configured project
    return register_pipelines()


@pytest.mark.parametrize(
    ("strategies", "expected"),
    [
        (["single_node"], False),
        (["single_node", "local"], True),
        (["distributed"], True),
        (["custom"], True),
    ],
)
def test_training_needs_spark_only_for_a_selected_spark_strategy(pipelines, strategies, expected):
    assert needs_spark(pipelines["training"], strategies) is expected
    assert needs_spark(pipelines["__default__"], strategies) is expected


@pytest.mark.parametrize(("name", "expected"), [("batch_predict", True), ("data_prep", False)])
def test_other_pipelines_need_spark_by_their_tags(pipelines, name, expected):
    assert needs_spark(pipelines[name], []) is expected
