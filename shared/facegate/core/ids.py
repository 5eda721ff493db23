"""The formats of the ids and names that messages and keys carry.

Owns the regular expressions of upload/event ids, door and camera names,
person names and stamp (stage) names, and the ``is_*`` checks on them.
:mod:`facegate.core.messages` re-exports the checks.
"""

from __future__ import annotations

import re

__all__ = ["is_name", "is_person", "is_upload_id"]

_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}\Z")
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_PERSON_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_STAGE_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}\Z")


def is_upload_id(value: str) -> bool:
    """True for a valid upload or event id: 32 lower-case hex digits."""
    return bool(_UPLOAD_ID_RE.match(value))


def is_name(value: str) -> bool:
    """True for a valid door or camera id: ``[A-Za-z0-9_-]{1,64}``."""
    return bool(_NAME_RE.match(value))


def is_person(value: str) -> bool:
    """True for a valid person name: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``."""
    return bool(_PERSON_RE.match(value))
