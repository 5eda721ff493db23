"""Ingest's settings (``FACEGATE_*``; see :mod:`facegate.runtime.settings`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from facegate.runtime.secrets import SecretRule
from facegate.runtime.settings import CommonSettings, Endpoint


class IngestSettings(CommonSettings):
    """The ingest HTTP service."""

    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(18700, ge=1, le=65535)
    webhook_token: Annotated[SecretStr, SecretRule()]
    camera_token: Annotated[SecretStr, SecretRule()]
    presign_expiry_s: int = Field(60, ge=5, le=3600)
    notifications: Literal["seaweedfs", "minio", "none"] = Field(
        "seaweedfs", description="how bucket events reach ingest"
    )
    s3_public_endpoint: Endpoint = Field(
        "127.0.0.1:18333",
        description="host cameras use in presigned URLs (default: the S3 endpoint)",
    )
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 2**20)
    reconcile_interval_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="seconds between reconciler passes (0: off)"
    )
    reconcile_grace_s: float = Field(
        30.0,
        ge=1.0,
        le=3600.0,
        description="an object younger than this is left to its webhook",
    )
    reconcile_batch: int = Field(
        500, ge=1, le=1000, description="object keys one reconciler pass looks at"
    )
    reconcile_horizon_s: int = Field(
        6 * 3600,
        ge=60,
        le=20 * 3600,
        description="objects older than this are settled: the reconciler leaves them (must "
        "stay under the 24 h life of a decision record)",
    )
    reconcile_retry_s: int = Field(
        300,
        ge=10,
        le=86400,
        description="an upload sent on but still undecided after this is sent again",
    )

    @model_validator(mode="after")
    def _reconciler_windows(self) -> IngestSettings:
        if self.reconcile_grace_s >= self.reconcile_horizon_s:
            raise ValueError(
                "FACEGATE_RECONCILE_GRACE_S must be shorter than FACEGATE_RECONCILE_HORIZON_S"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _public_endpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("s3_public_endpoint"):
            data["s3_public_endpoint"] = data.get("s3_endpoint") or cls.model_fields[
                "s3_endpoint"
            ].default
        return data


__all__ = ["IngestSettings"]
