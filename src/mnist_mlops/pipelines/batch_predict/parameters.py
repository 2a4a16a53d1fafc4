"""The ``batch_predict`` parameters (``conf/base/parameters_batch_predict.yml``)."""

from __future__ import annotations

from pydantic import Field

from mnist_mlops.config.parameters import Section


class BatchPredictParameters(Section):
    """The model version a table is scored with, and how the table is split."""

    section = "batch_predict"

    model_name: str = Field(min_length=1)
    alias: str = Field(min_length=1)
    partitions: int = Field(ge=0)  # 0: as Spark reads the table
