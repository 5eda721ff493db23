"""The JSON codec and field validation shared by the message dataclasses.

:class:`_Message` is the base class of every message of
:mod:`facegate.core.messages`: ``to_dict``/``to_json``, ``from_dict``/
``from_json`` (checking each decoded value against the field's type hint
with :func:`_coerce`), ``with_stamp``, and the checks common to all of them
(schema version, ids, names, person names, stamps). Any problem raises
:class:`~facegate.core.errors.BadMessageError`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Hashable
from enum import StrEnum
from typing import Any, ClassVar, Self, Union

from facegate.core.errors import BadMessageError
from facegate.core.ids import _STAGE_RE, is_name, is_person, is_upload_id

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 1
"""The one schema version this code writes and accepts."""

_MAX_STAMPS = 32


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
        hints = _type_hints(cls)
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


def _type_hints(cls: type) -> dict[str, Any]:
    """A message class's resolved field types (resolving them is most of the
    cost of decoding a message, and they never change)."""
    return _cached_hints(cls)


@functools.cache
def _cached_hints(cls: Hashable) -> dict[str, Any]:
    return typing.get_type_hints(cls)


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
