"""The formats of the ids and names that messages and keys carry.

Owns the regular expressions of upload/event ids, door and camera names,
person names and stamp (stage) names, and the ``is_*`` checks on them.
:mod:`facegate.core.messages` re-exports the checks.
"""

from __future__ import annotations

import re

__all__ = ["is_name", "is_person", "is_stream_id", "is_upload_id", "stream_id_key"]

_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_PERSON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_STAGE_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}\Z")
_STREAM_ID_RE = re.compile(r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})\Z")
_U64_MAX = 2**64 - 1


def is_upload_id(value: str) -> bool:
    """True for a valid upload or event id: 32 lower-case hex digits."""
    return bool(_UPLOAD_ID_RE.match(value))


def is_name(value: str) -> bool:
    """True for a valid door or camera id: ``[A-Za-z0-9_-]{1,64}``."""
    return bool(_NAME_RE.match(value))


def is_person(value: str) -> bool:
    """True for a valid person name: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``."""
    return bool(_PERSON_RE.match(value))


def is_stream_id(value: str) -> bool:
    """True for a Redis stream entry id ``<ms>-<seq>`` (two unsigned 64-bit
    numbers, no leading zeros, no ``*`` or ``$``)."""
    match = _STREAM_ID_RE.match(value)
    return match is not None and all(int(part) <= _U64_MAX for part in match.groups())


def stream_id_key(value: str) -> tuple[int, int]:
    """A stream id as ``(ms, seq)``, the order Redis gives its entries;
    raises ``ValueError`` when ``value`` is not one."""
    if not is_stream_id(value):
        raise ValueError(f"not a stream id: {value!r}")
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)
