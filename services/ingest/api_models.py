"""The JSON bodies of ingest's HTTP API, as pydantic models.

They are what FastAPI validates requests with and what the served OpenAPI
document (``/openapi.json``) describes; the error body of every refusal is
:class:`ErrorBody`. Names and ids are checked again by the use cases
(``checks.py``), which give the precise message.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Door and camera ids (``facegate.core.ids``)."""
PERSON_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$"
"""A badge; empty means none (as before the pydantic models)."""
HEX32_PATTERN = r"^([0-9a-f]{32})?$"
"""An approach id; empty means none."""


class ErrorBody(BaseModel):
    """Every answer that is not a success: ``{"error": code, "message": text}``."""

    error: str = Field(
        description="machine-readable code: bad_request, unauthorized, not_found, "
        "unknown_door, method_not_allowed, length_required, request_timeout, too_large, "
        "unsupported_media_type, unavailable, internal_error"
    )
    message: str = Field(description="what was wrong, for a person")


class PresignRequest(BaseModel):
    """``POST /v1/doors/{door}/presign``: who is at the door, what will be sent."""

    model_config = ConfigDict(extra="ignore")

    camera: str = Field(pattern=NAME_PATTERN, description="camera id", examples=["cam1"])
    badge: str | None = Field(
        None,
        pattern=PERSON_PATTERN,
        description="the claimed person (verify doors)",
        examples=["alice"],
    )
    approach: str | None = Field(
        None,
        pattern=HEX32_PATTERN,
        description="the approach this frame belongs to (identify doors)",
    )
    ext: str = Field("jpg", description="image extension: jpg, jpeg, png, webp, bmp")
    content_type: str | None = Field(
        None, description="the Content-Type the PUT will carry (must go with ext)"
    )


class PresignResponse(BaseModel):
    upload_id: str = Field(description="32 hex")
    key: str = Field(description="uploads/<door>/<camera>/<upload_id>.<ext>")
    url: str = Field(description="presigned PUT URL of exactly that key")
    expires_in: int = Field(description="seconds the URL stays valid")


class UploadResponse(BaseModel):
    upload_id: str
    key: str


class EventResponse(BaseModel):
    """What one webhook body led to."""

    enqueued: int = Field(description="uploads sent on")
    upload_ids: list[str]
    duplicates: int = Field(description="uploads already sent on or decided")
    ignored: int = Field(description="events outside the uploads bucket/prefix, or not creates")


class Health(BaseModel):
    status: str = Field(description='"ok"')
    bucket: str


class Ready(BaseModel):
    status: str = Field(description='"ready"')
    redis: str = Field(description='"ok"')
    s3: str = Field(description='"ok"')


__all__ = [
    "HEX32_PATTERN",
    "NAME_PATTERN",
    "PERSON_PATTERN",
    "ErrorBody",
    "EventResponse",
    "Health",
    "PresignRequest",
    "PresignResponse",
    "Ready",
    "UploadResponse",
]
