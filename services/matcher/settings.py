"""The matcher's settings (``FACEGATE_*``; see :mod:`facegate.runtime.settings`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from facegate.core.calibration import DEFAULT_MARGIN
from facegate.core.errors import BadMessageError
from facegate.core.schedule import zone
from facegate.runtime.settings import CommonSettings


class MatcherSettings(CommonSettings):
    """The matcher worker (policy, gallery, signed events)."""

    threshold: float = Field(0.6, gt=0.0, le=2.0, description="default threshold of a door")
    margin: float = Field(
        DEFAULT_MARGIN, ge=0.0, le=1.0, description="default identify margin (doors without one)"
    )
    event_ttl_s: int = Field(30, ge=1, le=3600, description="an event's life at the lock")
    stream_maxlen: int = Field(10000, ge=100, le=10_000_000)
    approach_window_s: float = Field(
        3.0,
        ge=0.2,
        le=60.0,
        description="an approach's frames count this long after its first upload; "
        "then it gets one DENY unless a frame passed",
    )

    timezone: str = Field(
        "UTC",
        description="the building's time zone (zoneinfo name): the wall clock of door schedules",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone(value)
        except BadMessageError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    matcher_metrics_port: int = Field(
        0, ge=0, le=65535,
        description="the matcher's /metrics, /healthz, /readyz (0: off; the local stack "
        "uses 18721 + n - 1 for matcher-n)",
    )


__all__ = ["MatcherSettings"]
