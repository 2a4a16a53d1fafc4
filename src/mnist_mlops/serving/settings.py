"""The ``serving`` parameters, validated once at start-up.

``conf/base/parameters_serving.yml`` holds the same values as the defaults below; an unknown or
wrong key stops ``kedro serve`` before anything loads, with the key named.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ServingLimits(BaseModel):
    """What one client may cost the server: sizes, waits and connections (``serving.limits``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    header_timeout_s: float = Field(10, gt=0)
    body_timeout_s: float = Field(10, gt=0)
    # After an answer sent before its request's body arrived (413, 401, 415): what is still read
    # and discarded so that the client, still sending, reads the answer; 0 closes at once.
    max_linger_bytes: int = Field(64 * 1024 * 1024, ge=0)
    linger_timeout_s: float = Field(5, ge=0)
    keepalive_timeout_s: float = Field(5, gt=0)
    max_connections: int = Field(1024, gt=0)
    backlog: int = Field(2048, ge=1024)
    shutdown_grace_s: float = Field(10, ge=0)


class RolloutSettings(BaseModel):
    """A challenger (``serving.rollout``): the version under ``challenger_alias``, when there is
    one, answers ``canary_fraction`` of the scoring requests and scores ``shadow_fraction`` of
    production's requests off the response path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    challenger_alias: str = "canary"
    canary_fraction: float = Field(0.0, ge=0, le=1)
    shadow_fraction: float = Field(0.0, ge=0, le=1)
    shadow_queue: int = Field(64, gt=0, description="requests waiting for the shadow; then drop")
    challenger_timeout_s: float = Field(1.0, gt=0)


class ServingSettings(BaseModel):
    """Everything ``kedro serve`` reads from the ``serving`` parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = "mnist-cnn"
    alias: str = "production"
    host: str = "127.0.0.1"
    port: int = Field(5001, ge=0, le=65535)
    workers: int = Field(0, ge=0, description="worker processes; 0 = one per core")
    poll_s: float = Field(30, gt=0, description="seconds between two looks at the alias")
    request_log: str | None = "data/10_serving/requests.jsonl"
    request_log_max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    request_log_backups: int = Field(5, ge=1)
    request_log_flush_s: float = Field(10, gt=0, description="object-store logs: upload period")
    onnx_threads: int = Field(1, ge=0, description="per model and worker; 0 = ONNX Runtime's")
    limits: ServingLimits = ServingLimits()
    rollout: RolloutSettings = RolloutSettings()

    @property
    def worker_count(self) -> int:
        """Worker processes to start: ``workers``, or one per core when 0."""
        return self.workers or os.cpu_count() or 1


class SettingsError(ValueError):
    """A ``serving`` parameter that does not exist or has a wrong value."""


def validate_settings(params: dict[str, Any] | None) -> ServingSettings:
    """The ``serving`` parameter section as settings.

    Raises:
        SettingsError: naming each bad key (``serving.limits.bogus``), its value and why.
    """
    try:
        return ServingSettings.model_validate(params or {})
    except ValidationError as exc:
        problems = [
            f"serving.{'.'.join(str(part) for part in error['loc'])}"
            f" = {error.get('input')!r}: {error['msg']}"
            for error in exc.errors()
        ]
        raise SettingsError(
            "invalid serving parameters (conf/base/parameters_serving.yml or --params): "
            + "; ".join(problems)
        ) from None
