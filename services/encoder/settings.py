"""The encoder's settings (``FACEGATE_*``; see :mod:`facegate.runtime.settings`)."""

from __future__ import annotations

from pydantic import Field

from facegate.runtime.settings import CommonSettings, OptionalPath


class EncoderSettings(CommonSettings):
    """The encoder worker (TensorFlow model, micro-batching)."""

    batch_size: int = Field(16, ge=1, le=256, description="uploads per batch (B)")
    batch_wait_ms: int = Field(15, ge=0, le=5000, description="longest wait to fill a batch (T)")
    model_cache: OptionalPath = Field(None, description="None: the engine's own user cache")
    probe_ttl_s: int = Field(3600, ge=10, le=7 * 86400)
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 2**20)


__all__ = ["EncoderSettings"]
