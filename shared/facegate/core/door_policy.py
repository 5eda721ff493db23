"""A door's policy: its mode, who may pass (``allowed`` and access
``rules``), its threshold, margin, target stranger acceptance and frames per
approach, and its Redis hash fields (pure; decided by
:mod:`facegate.core.policy`, which re-exports these names)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from facegate.core.access import (
    EVERYONE,
    AccessRule,
    GroupsOf,
    admission,
    rules_from_text,
    rules_to_text,
)
from facegate.core.calibration import DEFAULT_STRANGER_RATE
from facegate.core.errors import BadMessageError
from facegate.core.messages import Reason, is_name, is_person

UTC = ZoneInfo("UTC")


class DoorMode(StrEnum):
    VERIFY = "verify"
    """1:1: the camera sends a badge (claimed person); the face must match it."""
    IDENTIFY = "identify"
    """1:K: the face alone says who it is."""


MAX_FRAMES = 10
"""The most frames per approach a door may be calibrated for."""


@dataclass(frozen=True)
class DoorPolicy:
    """Who may pass a door and how strictly faces are compared.

    ``threshold`` ``None``: calibrated (identify doors; a verify door
    without one gets the matcher's default). ``stranger_rate``: the share
    of strangers' approaches a calibrated identify door may let in;
    ``frames``: the frames a camera sends per approach (each one is a try
    for an impostor too, so the threshold is for the approach); ``rules``:
    people and groups allowed, each at any time or on a weekly schedule."""

    door: str
    mode: DoorMode
    allowed: frozenset[str]
    threshold: float | None = None
    margin: float = 0.0
    stranger_rate: float = DEFAULT_STRANGER_RATE
    frames: int = 1
    rules: tuple[AccessRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        if not is_name(self.door):
            raise BadMessageError(f"invalid door id {self.door!r}")
        object.__setattr__(self, "mode", DoorMode(self.mode))
        object.__setattr__(self, "allowed", frozenset(self.allowed))
        for person in self.allowed:
            if person != EVERYONE and not is_person(person):
                raise BadMessageError(f"door {self.door}: invalid person name {person!r}")
        if self.threshold is not None and not (
            math.isfinite(self.threshold) and 0.0 < self.threshold <= 2.0
        ):
            raise BadMessageError(f"door {self.door}: threshold must be in (0, 2]")
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 1.0):
            raise BadMessageError(f"door {self.door}: margin must be in [0, 1]")
        if not (math.isfinite(self.stranger_rate) and 1e-9 <= self.stranger_rate <= 0.5):
            raise BadMessageError(f"door {self.door}: stranger rate must be in [1e-9, 0.5]")
        if not (type(self.frames) is int and 1 <= self.frames <= MAX_FRAMES):
            raise BadMessageError(f"door {self.door}: frames must be 1..{MAX_FRAMES}")

    @property
    def calibrated(self) -> bool:
        """The threshold follows the gallery (identify door without a fixed one)."""
        return self.mode is DoorMode.IDENTIFY and self.threshold is None

    def allows(self, person: str) -> bool:
        """In ``allowed`` (at any time, without looking at rules)."""
        return EVERYONE in self.allowed or person in self.allowed

    def admission(
        self, person: str, now: float, tz: ZoneInfo = UTC, groups_of: GroupsOf | None = None
    ) -> Reason | None:
        """``None`` when ``person`` may pass at ``now``, else the reason to deny."""
        return admission(self.allowed, self.rules, person, now, tz, groups_of)

    def to_fields(self) -> dict[str, str]:
        """The Redis hash fields of ``facegate:door:<door>`` (no
        ``threshold`` field: calibrated)."""
        fields = {
            "mode": self.mode.value,
            "allowed": json.dumps(sorted(self.allowed)),
            "margin": repr(float(self.margin)),
            "stranger_rate": repr(float(self.stranger_rate)),
            "frames": str(self.frames),
        }
        if self.threshold is not None:
            fields["threshold"] = repr(float(self.threshold))
        if self.rules:
            fields["rules"] = rules_to_text(self.rules)
        return fields

    @classmethod
    def from_fields(
        cls,
        door: str,
        fields: Mapping[str, str],
        *,
        default_threshold: float = 0.6,
        default_margin: float = 0.0,
    ) -> DoorPolicy:
        """Parse the Redis hash; anything malformed raises BadMessageError.
        A verify door without a threshold gets ``default_threshold``; an
        identify door without one is calibrated."""
        try:
            allowed = json.loads(fields.get("allowed", "[]"))
            if not isinstance(allowed, list) or not all(isinstance(p, str) for p in allowed):
                raise ValueError("allowed must be a JSON list of names")
            mode = DoorMode(fields.get("mode", ""))
            threshold: float | None = None
            if "threshold" in fields:
                threshold = float(fields["threshold"])
            elif mode is DoorMode.VERIFY:
                threshold = default_threshold
            margin = float(fields["margin"]) if "margin" in fields else default_margin
            rate = float(fields.get("stranger_rate", DEFAULT_STRANGER_RATE))
            frames = int(fields.get("frames", "1"))
            rules = rules_from_text(fields["rules"]) if "rules" in fields else ()
        except (ValueError, TypeError) as exc:  # BadMessageError is a ValueError too
            raise BadMessageError(f"door {door}: malformed policy ({exc})") from exc
        return cls(door, mode, frozenset(allowed), threshold, margin, rate, frames, rules)


__all__ = ["MAX_FRAMES", "DoorMode", "DoorPolicy"]
