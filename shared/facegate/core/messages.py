"""Typed, versioned messages between the services, and their enums.

Every message is a frozen, keyword-only dataclass carrying ids, object keys
and small facts, never image bytes or arrays (probe encodings travel through
Redis under :func:`facegate.core.keys.probe_key`). Each one encodes itself with
``to_json() -> bytes`` and decodes with ``Cls.from_json(data)``, which
validates every field and raises :class:`~facegate.core.errors.BadMessageError`
on anything unexpected: wrong JSON, missing or unknown fields, wrong types,
an unknown schema version ``v``, malformed ids or names.

::

    request = MatchRequest(upload_id=new_upload_id(), kind=UploadKind.ACCESS,
                           door="front", camera="cam1", faces=1,
                           model_id="dlib-resnet-v1")
    assert MatchRequest.from_json(request.to_json()) == request

``stamps`` maps a pipeline stage (see :data:`STAGES`) to a unix time; each
service adds its own with :meth:`with_stamp`, so a door event shows where the
time went. ``uploaded`` is when the object store wrote the object (the
freshness of an access upload is measured from it, see
:func:`facegate.core.policy.is_stale`), ``ingested`` when ingest sent it on.

The shared JSON codec lives in :mod:`facegate.core.codec`, the id and name
formats in :mod:`facegate.core.ids`; the public names of both are
importable from here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from facegate.core.codec import SCHEMA_VERSION, _check, _is_number, _Message
from facegate.core.errors import PermanentError
from facegate.core.ids import is_name, is_person, is_stream_id, is_upload_id

STAGES = (
    "uploaded",
    "ingested",
    "encode_start",
    "fetched",
    "decoded",
    "engine_start",
    "detected",
    "embedded",
    "match_start",
    "matched",
    "published",
    "window_end",
)
"""Known stage names of ``stamps`` (others are accepted but not expected);
``window_end`` is the stamp of an approach's closing DENY."""


class Decision(StrEnum):
    """What the door does."""

    OPEN = "OPEN"
    DENY = "DENY"


class Reason(StrEnum):
    """Why. ``granted`` is the only reason that goes with ``OPEN``."""

    GRANTED = "granted"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    UNKNOWN_PERSON = "unknown_person"
    BELOW_THRESHOLD = "below_threshold"
    NOT_ALLOWED_HERE = "not_allowed_here"
    BAD_IMAGE = "bad_image"
    UNKNOWN_DOOR = "unknown_door"
    TIMEOUT = "timeout"
    INTERNAL_ERROR = "internal_error"
    UNCLAIMED = "unclaimed"
    """The object was not made through a presigned URL or a direct upload of
    ingest (no claim bound to its key): never opens, whatever the face."""
    OUTSIDE_SCHEDULE = "outside_schedule"
    """Allowed here only within weekly windows (a rule's schedule), none open now."""

    @classmethod
    def from_error(cls, exc: BaseException) -> Reason:
        """The reason to deny with for an exception: a
        :class:`~facegate.core.errors.PermanentError`'s own ``reason`` when it is a
        door reason, ``internal_error`` for everything else."""
        if isinstance(exc, PermanentError):
            try:
                return cls(exc.reason)
            except ValueError:
                return cls.INTERNAL_ERROR
        return cls.INTERNAL_ERROR


class UploadKind(StrEnum):
    """An access attempt at a door, or an enrolment photo."""

    ACCESS = "access"
    ENROLL = "enroll"


def _check_approach(approach: str | None) -> None:
    _check(
        approach is None or (isinstance(approach, str) and is_upload_id(approach)),
        f"approach must be 32 lower-case hex digits, got {approach!r}",
    )


def legible_ids(payload: object) -> tuple[str, str, str | None] | None:
    """``(upload_id, door, camera)`` of a message that does not decode, when
    those fields can still be read (so the door can be answered with DENY);
    ``camera`` is ``None`` when it is not legible."""
    try:
        data = json.loads(payload) if isinstance(payload, str | bytes) else payload
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    upload_id, door, camera = data.get("upload_id"), data.get("door"), data.get("camera")
    if not (isinstance(upload_id, str) and is_upload_id(upload_id)):
        return None
    if not (isinstance(door, str) and is_name(door)):
        return None
    if not (isinstance(camera, str) and is_name(camera)):
        camera = None
    return upload_id, door, camera


@dataclass(frozen=True, kw_only=True)
class EncodeRequest(_Message):
    """Ingest -> encoder: one uploaded object to encode.

    ``kind=access``: ``door`` and ``camera`` are set, ``badge`` is the claimed
    person (or ``None``), ``approach`` the approach the frame belongs to (or
    ``None``: a single-frame approach). ``kind=enroll``: ``person`` is the
    person the photo enrols; ``door``/``camera``/``badge`` are ``None``.
    """

    v: int = SCHEMA_VERSION
    upload_id: str
    kind: UploadKind
    bucket: str
    key: str
    door: str | None = None
    camera: str | None = None
    badge: str | None = None
    person: str | None = None
    stamps: dict[str, float] = field(default_factory=dict)
    approach: str | None = None

    _names: ClassVar[tuple[str, ...]] = ("door", "camera")
    _persons: ClassVar[tuple[str, ...]] = ("badge", "person")

    def _validate(self) -> None:
        super()._validate()
        _check_approach(self.approach)
        _check(bool(self.bucket) and len(self.bucket) <= 63, "bucket must be 1-63 characters")
        _check(bool(self.key) and len(self.key) <= 1024, "key must be 1-1024 characters")
        if self.kind is UploadKind.ACCESS:
            _check(
                self.door is not None and self.camera is not None,
                "an access upload needs door and camera",
            )
        else:
            _check(self.person is not None, "an enrolment upload needs person")


@dataclass(frozen=True, kw_only=True)
class MatchRequest(_Message):
    """Encoder -> matcher: the probe of one upload is in Redis, decide.

    ``faces`` is how many faces the encoder found (their encodings are under
    ``probe_key(upload_id)``); ``error`` is set when the encoder could not
    produce a probe (``bad_image``...), in which case the matcher denies with
    it.
    """

    v: int = SCHEMA_VERSION
    upload_id: str
    kind: UploadKind = UploadKind.ACCESS
    door: str | None = None
    camera: str | None = None
    badge: str | None = None
    person: str | None = None
    faces: int = 0
    error: Reason | None = None
    model_id: str = ""
    stamps: dict[str, float] = field(default_factory=dict)
    approach: str | None = None

    _names: ClassVar[tuple[str, ...]] = ("door", "camera")
    _persons: ClassVar[tuple[str, ...]] = ("badge", "person")

    def _validate(self) -> None:
        super()._validate()
        _check_approach(self.approach)
        _check(
            type(self.faces) is int and 0 <= self.faces <= 1000,
            f"faces must be an integer 0..1000, got {self.faces!r}",
        )
        _check(self.error is not Reason.GRANTED, "error cannot be 'granted'")
        if self.kind is UploadKind.ACCESS:
            _check(self.door is not None, "an access match needs door")
        _check(len(self.model_id) <= 200, "model_id too long")

    @classmethod
    def denied(
        cls,
        upload_id: str,
        door: str,
        camera: str | None = None,
        *,
        reason: Reason = Reason.INTERNAL_ERROR,
        badge: str | None = None,
        model_id: str = "",
        stamps: Mapping[str, float] | None = None,
        approach: str | None = None,
    ) -> MatchRequest:
        """An access upload the matcher must deny with ``reason`` without
        deciding (it could not be encoded, or its message was unreadable)."""
        return cls(
            upload_id=upload_id,
            door=door,
            camera=camera,
            badge=badge,
            error=reason,
            model_id=model_id,
            stamps=dict(stamps or {}),
            approach=approach,
        )


@dataclass(frozen=True, kw_only=True)
class DoorEvent(_Message):
    """Matcher -> locks, subscribers and the audit log: what a door does.

    ``id`` is the event's own id (the replay-guard key); ``distance`` is the
    best distance found (``None`` when no comparison was made); a lock acts
    on it only between ``issued_at`` and ``expires_at`` (unix seconds).
    ``approach``: the approach the event answers (several frames of one
    passage); a door hears at most one OPEN per approach, or one DENY when
    its window closed without a pass (that DENY names the frame that came
    closest in ``upload_id``).
    """

    v: int = SCHEMA_VERSION
    id: str
    upload_id: str
    door: str
    camera: str | None = None
    decision: Decision
    reason: Reason
    person: str | None = None
    distance: float | None = None
    issued_at: float
    expires_at: float
    stream_id: str | None = None
    """The event's entry id in its door's stream (``<ms>-<seq>``), chosen
    when it is recorded and covered by the signature; ``None`` before that,
    and in the audit record of an approach's frame that was not its door
    event (which no lock accepts)."""
    stamps: dict[str, float] = field(default_factory=dict)
    approach: str | None = None

    _ids: ClassVar[tuple[str, ...]] = ("id", "upload_id")
    _names: ClassVar[tuple[str, ...]] = ("door", "camera")
    _persons: ClassVar[tuple[str, ...]] = ("person",)

    def _validate(self) -> None:
        super()._validate()
        _check_approach(self.approach)
        _check(
            (self.decision is Decision.OPEN) == (self.reason is Reason.GRANTED),
            f"decision {self.decision} does not go with reason {self.reason}",
        )
        _check(
            self.decision is Decision.DENY or self.person is not None,
            "an OPEN event names the person",
        )
        for name in ("issued_at", "expires_at"):
            value = getattr(self, name)
            _check(
                _is_number(value) and math.isfinite(value),
                f"{name} must be a finite number",
            )
        _check(self.expires_at >= self.issued_at, "expires_at is before issued_at")
        _check(
            self.stream_id is None
            or (isinstance(self.stream_id, str) and is_stream_id(self.stream_id)),
            f"stream_id must be a stream entry id <ms>-<seq>, got {self.stream_id!r}",
        )
        if self.distance is not None:
            _check(
                _is_number(self.distance) and math.isfinite(self.distance) and self.distance >= 0.0,
                f"distance must be finite and >= 0, got {self.distance!r}",
            )

    @property
    def granted(self) -> bool:
        return self.decision is Decision.OPEN


__all__ = [
    "SCHEMA_VERSION",
    "STAGES",
    "Decision",
    "DoorEvent",
    "EncodeRequest",
    "MatchRequest",
    "Reason",
    "UploadKind",
    "is_name",
    "is_person",
    "is_upload_id",
    "legible_ids",
]
