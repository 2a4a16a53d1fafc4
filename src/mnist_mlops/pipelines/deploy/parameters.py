"""The ``deployment`` parameters (``conf/base/parameters_deployment.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mnist_mlops.config.parameters import Section


class DeploymentParameters(Section):
    """Which version is deployed, and the checks it passes on the way."""

    section = "deployment"

    model_name: str = Field(min_length=1)
    enabled: bool
    version: int | None = Field(ge=1)  # None: the newest pushed version not yet deployed
    rollback: bool
    # canary: a version passing every check becomes the challenger (alias canary) when a
    # production version exists; the rollout pipeline promotes it on live evidence.
    mode: Literal["direct", "canary"]
    min_test_accuracy: float = Field(ge=0, le=1)
    min_photo_accuracy: float = Field(ge=0, le=1)  # on the whole report set
    picture_batch_size: int = Field(ge=1)  # pictures per infra-validation request
    server_ready_timeout_s: float = Field(gt=0)
    infra_requests: int = Field(ge=1)
