"""The ``registration`` parameters (``conf/base/parameters_registration.yml``)."""

from __future__ import annotations

from pydantic import Field

from mnist_mlops.config.parameters import Section


class RegistrationParameters(Section):
    """The gate a champion passes, and where it is registered."""

    section = "registration"

    model_name: str = Field(min_length=1)
    min_test_accuracy: float = Field(ge=0, le=1)
    max_regression: float = Field(ge=0, le=1)  # tolerated drop against production's accuracy
    production_experiment: str = Field(min_length=1)
