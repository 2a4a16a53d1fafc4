"""The ``data_prep`` parameters (``conf/base/parameters_data_prep.yml``)."""

from __future__ import annotations

from pydantic import Field

from mnist_mlops.config.parameters import Section


class DataPrepParameters(Section):
    """How the 60,000 MNIST training images are split."""

    section = "data_prep"

    validation_images: int = Field(ge=1, lt=60_000)  # held out, stratified
    max_train_images: int = Field(ge=0)  # 0 = all
    seed: int
