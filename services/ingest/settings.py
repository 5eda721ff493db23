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

    @model_validator(mode="before")
    @classmethod
    def _public_endpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("s3_public_endpoint"):
            data["s3_public_endpoint"] = data.get("s3_endpoint") or cls.model_fields[
                "s3_endpoint"
            ].default
        return data


__all__ = ["IngestSettings"]
