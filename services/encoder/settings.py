"""The encoder's settings (``FACEGATE_*``; see :mod:`facegate.runtime.settings`)."""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field, field_validator

from facegate.engine.detector import DetectorConfig
from facegate.engine.pyramid import PNET_CELL
from facegate.runtime.settings import CommonSettings, OptionalPath

_DETECTOR = DetectorConfig()
"""The engine's defaults (chosen by speed and LFW accuracy: see the README)."""


class EncoderSettings(CommonSettings):
    """The encoder worker (TensorFlow model, micro-batching)."""

    batch_size: int = Field(16, ge=1, le=256, description="uploads per batch (B)")
    batch_wait_ms: int = Field(15, ge=0, le=5000, description="longest wait to fill a batch (T)")
    model_cache: OptionalPath = Field(None, description="None: the engine's own user cache")
    probe_ttl_s: int = Field(3600, ge=10, le=7 * 86400)
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 2**20)
    pipeline_depth: int = Field(
        2, ge=1, le=8,
        description="batches waiting between two encoder stages (pixels: at most 2 x this + 2)",
    )
    min_face_size: int = Field(
        _DETECTOR.min_face_size, ge=PNET_CELL, le=4096,
        description="smallest face searched for, in pixels of the upload",
    )
    max_search_side: int = Field(
        _DETECTOR.max_side, ge=0, le=16384,
        description="longest side searched for faces (larger uploads: a scaled copy; 0: never)",
    )

    encoder_metrics_port: int = Field(
        0, ge=0, le=65535,
        description="the encoder's /metrics, /healthz, /readyz (0: off; the local stack "
        "uses 18711 + n - 1 for encoder-n)",
    )

    @field_validator("max_search_side")
    @classmethod
    def _room_for_a_face(cls, value: int) -> int:
        if value != 0 and value < 4 * PNET_CELL:
            raise ValueError(f"must be 0 or at least {4 * PNET_CELL}")
        return value

    def detector_config(self) -> DetectorConfig:
        """The face detector these settings ask for."""
        return replace(_DETECTOR, min_face_size=self.min_face_size, max_side=self.max_search_side)


__all__ = ["EncoderSettings"]
