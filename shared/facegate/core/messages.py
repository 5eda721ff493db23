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
time went.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Self, Union

from facegate.core.errors import BadMessageError, PermanentError

SCHEMA_VERSION = 1
"""The one schema version this code writes and accepts."""

STAGES = (
    "uploaded",
    "ingested",
    "encode_start",
    "fetched",
    "decoded",
    "detected",
    "embedded",
    "match_start",
    "matched",
    "published",
)
"""Known stage names of ``stamps`` (others are accepted but not expected)."""

_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_PERSON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_STAGE_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}\Z")
_MAX_STAMPS = 32


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


def is_upload_id(value: str) -> bool:
    """True for a valid upload or event id: 32 lower-case hex digits."""
    return bool(_UPLOAD_ID_RE.match(value))


def is_name(value: str) -> bool:
    """True for a valid door or camera id: ``[A-Za-z0-9_-]{1,64}``."""
    return bool(_NAME_RE.match(value))


def is_person(value: str) -> bool:
    """True for a valid person name: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``."""
    return bool(_PERSON_RE.match(value))


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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BadMessageError(what)


class _Message:
    """Shared JSON codec and validation of the message dataclasses."""

    _ids: ClassVar[tuple[str, ...]] = ("upload_id",)
    _names: ClassVar[tuple[str, ...]] = ()
    _persons: ClassVar[tuple[str, ...]] = ()

    def _validate(self) -> None:
        v = getattr(self, "v")  # noqa: B009 - every subclass has it
        _check(v == SCHEMA_VERSION, f"unsupported schema version {v!r}")
        for name in self._ids:
            value = getattr(self, name)
            _check(
                isinstance(value, str) and is_upload_id(value),
                f"{name} must be 32 lower-case hex digits, got {value!r}",
            )
        for name in self._names:
            value = getattr(self, name)
            _check(
                value is None or (isinstance(value, str) and is_name(value)),
                f"{name} must match [A-Za-z0-9_-]{{1,64}}, got {value!r}",
            )
        for name in self._persons:
            value = getattr(self, name)
            _check(
                value is None or (isinstance(value, str) and is_person(value)),
                f"{name} is not a valid person name: {value!r}",
            )
        stamps = getattr(self, "stamps")  # noqa: B009
        _check(isinstance(stamps, dict), "stamps must be an object")
        _check(len(stamps) <= _MAX_STAMPS, "too many stamps")
        for stage, when in stamps.items():
            _check(
                isinstance(stage, str) and bool(_STAGE_RE.match(stage)),
                f"bad stamp name {stage!r}",
            )
            _check(
                _is_number(when) and math.isfinite(when) and when >= 0.0,
                f"stamp {stage!r} must be a finite unix time, got {when!r}",
            )

    def __post_init__(self) -> None:
        self._validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (enums as their string values)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON; never NaN or infinity."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Validate and build from a decoded JSON object."""
        _check(isinstance(data, dict), f"{cls.__name__} must be a JSON object")
        assert isinstance(data, dict)
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - fields
        _check(not unknown, f"{cls.__name__}: unknown fields {sorted(map(str, unknown))}")
        if "v" in data:
            _check(
                type(data["v"]) is int and data["v"] == SCHEMA_VERSION,
                f"{cls.__name__}: unsupported schema version {data['v']!r}",
            )
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                has_default = (
                    f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                )
                _check(has_default, f"{cls.__name__}: missing field {f.name!r}")
                continue
            kwargs[f.name] = _coerce(cls.__name__, f.name, hints[f.name], data[f.name])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """Decode and validate; any problem raises ``BadMessageError``."""
        try:
            decoded = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadMessageError(f"{cls.__name__}: not valid JSON ({exc})") from exc
        return cls.from_dict(decoded)

    def with_stamp(self, stage: str, when: float) -> Self:
        """A copy with ``stamps[stage] = when`` (the original is unchanged)."""
        stamps = dict(getattr(self, "stamps"))  # noqa: B009
        stamps[stage] = float(when)
        return dataclasses.replace(self, stamps=stamps)  # type: ignore[type-var]


def _coerce(owner: str, name: str, hint: Any, value: object) -> object:
    """Check one decoded JSON value against the field's type hint."""
    where = f"{owner}.{name}"
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            _check(len(args) < len(typing.get_args(hint)), f"{where} must not be null")
            return None
        _check(len(args) == 1, f"{where}: unsupported type")
        return _coerce(owner, name, args[0], value)
    if origin is dict:
        _check(isinstance(value, dict), f"{where} must be an object")
        assert isinstance(value, dict)
        out: dict[str, float] = {}
        for k, v in value.items():
            _check(
                isinstance(v, int | float) and not isinstance(v, bool),
                f"{where}[{k!r}] must be a number",
            )
            out[k] = float(v)
        return out
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        if not isinstance(value, str):
            raise BadMessageError(f"{where} must be a string")
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(m.value for m in hint)
            raise BadMessageError(f"{where}: {value!r} is not one of {allowed}") from None
    if hint is bool:
        _check(isinstance(value, bool), f"{where} must be true or false")
        return value
    if hint is int:
        _check(type(value) is int, f"{where} must be an integer")
        return value
    if hint is float:
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"{where} must be a number",
        )
        assert isinstance(value, int | float)
        _check(math.isfinite(value), f"{where} must be finite")
        return float(value)
    if hint is str:
        _check(isinstance(value, str), f"{where} must be a string")
        return value
    raise BadMessageError(f"{where}: unsupported type {hint!r}")  # pragma: no cover


@dataclass(frozen=True, kw_only=True)
class EncodeRequest(_Message):
    """Ingest -> encoder: one uploaded object to encode.

    ``kind=access``: ``door`` and ``camera`` are set, ``badge`` is the claimed
    person (or ``None``). ``kind=enroll``: ``person`` is the person the photo
    enrols; ``door``/``camera``/``badge`` are ``None``.
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

    _names: ClassVar[tuple[str, ...]] = ("door", "camera")
    _persons: ClassVar[tuple[str, ...]] = ("badge", "person")

    def _validate(self) -> None:
        super()._validate()
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

    _names: ClassVar[tuple[str, ...]] = ("door", "camera")
    _persons: ClassVar[tuple[str, ...]] = ("badge", "person")

    def _validate(self) -> None:
        super()._validate()
        _check(
            type(self.faces) is int and 0 <= self.faces <= 1000,
            f"faces must be an integer 0..1000, got {self.faces!r}",
        )
        _check(self.error is not Reason.GRANTED, "error cannot be 'granted'")
        if self.kind is UploadKind.ACCESS:
            _check(self.door is not None, "an access match needs door")
        _check(len(self.model_id) <= 200, "model_id too long")


@dataclass(frozen=True, kw_only=True)
class DoorEvent(_Message):
    """Matcher -> locks, subscribers and the audit log: what a door does.

    ``id`` is the event's own id (the replay-guard key); ``distance`` is the
    best distance found (``None`` when no comparison was made); a lock acts
    on it only between ``issued_at`` and ``expires_at`` (unix seconds).
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
    stamps: dict[str, float] = field(default_factory=dict)

    _ids: ClassVar[tuple[str, ...]] = ("id", "upload_id")
    _names: ClassVar[tuple[str, ...]] = ("door", "camera")
    _persons: ClassVar[tuple[str, ...]] = ("person",)

    def _validate(self) -> None:
        super()._validate()
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
