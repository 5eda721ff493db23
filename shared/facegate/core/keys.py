"""Every Redis key, channel and stream name, and the object-key layout.

One place for the names of docs/DESIGN.md, so no service spells a key by
hand. Functions that build a key from an id validate the id first (a door
called ``a:b`` or ``../x`` never reaches Redis or the object store) and
raise :class:`~facegate.core.errors.BadMessageError` otherwise.

Object keys::

    uploads/<door>/<camera>/<upload_id>.<ext>     an access attempt
    enroll/<person>/<upload_id>.<ext>             an enrolment photo
"""

from __future__ import annotations

import re
import uuid

from facegate.core.errors import BadMessageError
from facegate.core.messages import is_name, is_person, is_upload_id

PREFIX = "facegate"

PEOPLE = f"{PREFIX}:people"
"""Set of enrolled person names."""

GALLERY_VERSION = f"{PREFIX}:gallery:version"
"""Integer, INCR on every enrol, revoke and door change."""

GALLERY_CHANGES = f"{PREFIX}:gallery:changes"
"""Stream of change records: entry id ``<version>-0``, fields ``kind``
(``person`` or ``door``) and ``name``; appended by the same script as the
write it records, capped (``MAXLEN ~``)."""

DOORS = f"{PREFIX}:doors"
"""Set of configured door ids."""

GROUPS = f"{PREFIX}:groups"
"""Set of access group names."""

AUDIT_STREAM = f"{PREFIX}:audit"
"""Stream of every decision (signed events)."""

APPROACHES_DUE = f"{PREFIX}:approaches:due"
"""Sorted set: approaches still open, scored by the end of their window."""
RECONCILER_LEASE = f"{PREFIX}:reconciler:lease"
"""String with a TTL: which ingest instance runs the reconciler's passes."""

RECONCILER_CURSOR = f"{PREFIX}:reconciler:cursor"
"""String: the last object key the reconciler looked at ("" = start over)."""

UPLOADS_PREFIX = "uploads/"
ENROLL_PREFIX = "enroll/"

IMAGE_EXTENSIONS: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
}
"""Object-key extension -> content type, for the image formats the engine
decodes (:data:`facegate.engine.images.ALLOWED_FORMATS`; a unit test keeps
the two in step). Ingest refuses every other extension."""

IMAGE_CONTENT_TYPES: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/pjpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/x-ms-bmp": "bmp",
}
"""Content types ingest accepts for a direct upload -> the key's extension."""

_EXT_RE = re.compile(r"[a-z0-9]{1,5}\Z")
_UPLOAD_KEY_RE = re.compile(
    r"uploads/(?P<door>[A-Za-z0-9_-]{1,64})/(?P<camera>[A-Za-z0-9_-]{1,64})/"
    r"(?P<upload_id>[0-9a-f]{32})\.(?P<ext>[a-z0-9]{1,5})\Z"
)
_ENROLL_KEY_RE = re.compile(
    r"enroll/(?P<person>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})/"
    r"(?P<upload_id>[0-9a-f]{32})\.(?P<ext>[a-z0-9]{1,5})\Z"
)


def new_upload_id() -> str:
    """A fresh upload (or event) id: 32 lower-case hex digits."""
    return uuid.uuid4().hex


def check_door(door: str) -> str:
    """Return ``door`` when it is a valid door id, else raise BadMessageError."""
    if not (isinstance(door, str) and is_name(door)):
        raise BadMessageError(f"invalid door id {door!r}: use [A-Za-z0-9_-]{{1,64}}")
    return door


def check_camera(camera: str) -> str:
    """Return ``camera`` when it is a valid camera id, else raise."""
    if not (isinstance(camera, str) and is_name(camera)):
        raise BadMessageError(f"invalid camera id {camera!r}: use [A-Za-z0-9_-]{{1,64}}")
    return camera


def check_person(person: str) -> str:
    """Return ``person`` when it is a valid person name, else raise."""
    if not (isinstance(person, str) and is_person(person)):
        raise BadMessageError(
            f"invalid person name {person!r}: use [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}"
        )
    return person


def check_upload_id(upload_id: str) -> str:
    """Return ``upload_id`` when it is 32 lower-case hex digits, else raise."""
    if not (isinstance(upload_id, str) and is_upload_id(upload_id)):
        raise BadMessageError(f"invalid upload id {upload_id!r}: want 32 hex digits")
    return upload_id


def check_ext(ext: str) -> str:
    """Return the lower-cased extension (no dot) when valid, else raise."""
    low = ext.lower().lstrip(".") if isinstance(ext, str) else ""
    if not _EXT_RE.match(low):
        raise BadMessageError(f"invalid file extension {ext!r}")
    return low


# --- Redis keys ----------------------------------------------------------


def probe_key(upload_id: str) -> str:
    """Hash: the probe encodings of one upload (``enc:<i>``, ``box:<i>``...)."""
    return f"{PREFIX}:probe:{check_upload_id(upload_id)}"


def person_key(person: str) -> str:
    """Hash: one person's templates (``enc:<template_id>``) and model facts."""
    return f"{PREFIX}:person:{check_person(person)}"


def group_key(group: str) -> str:
    """Set: the people in an access group."""
    return f"{PREFIX}:group:{check_name(group, 'group')}"


def person_groups_key(person: str) -> str:
    """Set: the access groups a person is in (the reverse of :func:`group_key`)."""
    return f"{PREFIX}:groups_of:{check_person(person)}"


def check_name(value: str, what: str) -> str:
    """``value`` when it is a valid [A-Za-z0-9_-]{1,64} id, else BadMessageError."""
    if not (isinstance(value, str) and is_name(value)):
        raise BadMessageError(f"invalid {what} name {value!r}: use [A-Za-z0-9_-]{{1,64}}")
    return value


def door_config_key(door: str) -> str:
    """Hash: a door's policy (``mode``, ``allowed``, ``threshold``, ``margin``)."""
    return f"{PREFIX}:door:{check_door(door)}"


def door_key_version_key(door: str) -> str:
    """String: the version of a door's event-signing key (absent: 1). Kept
    when the door is removed, so a retired key never comes back."""
    return f"{PREFIX}:door:{check_door(door)}:key_version"


def claim_key(upload_id: str) -> str:
    """Hash: the badge claimed for an upload (``key``, ``door``, ``camera``, ``badge``)."""
    return f"{PREFIX}:claim:{check_upload_id(upload_id)}"


def decision_key(upload_id: str) -> str:
    """String: the signed event of an upload; ``SET NX`` is the exactly-once gate."""
    return f"{PREFIX}:decision:{check_upload_id(upload_id)}"


def door_stream(door: str) -> str:
    """Stream: the signed events of one door (lock catch-up)."""
    return f"{PREFIX}:events:{check_door(door)}"


def door_channel(door: str) -> str:
    """Pub/sub channel: the signed events of one door, live."""
    return f"{PREFIX}:door:{check_door(door)}:events"


def approach_key(door: str, camera: str, approach: str) -> str:
    """Hash: one approach (several frames) at a door: its window, frames
    seen, outcome, the closest frame so far."""
    return (
        f"{PREFIX}:approach:{check_door(door)}:{check_camera(camera)}:"
        f"{check_upload_id(approach)}"
    )
def pending_key(upload_id: str) -> str:
    """String with a TTL: the upload was sent on (to the encoder, or denied)
    and its decision is awaited; the reconciler leaves it alone meanwhile."""
    return f"{PREFIX}:pending:{check_upload_id(upload_id)}"


def reply_key(upload_id: str) -> str:
    """List: the enrolment result for the CLI that waits on it."""
    return f"{PREFIX}:reply:{check_upload_id(upload_id)}"


# --- operators and console sessions --------------------------------------

OPERATORS = f"{PREFIX}:operators"
"""Set of operator account names (the console's sign-in)."""

_OPERATOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")


def check_operator(name: str) -> str:
    """Return ``name`` when it is a valid operator name, else raise."""
    if not (isinstance(name, str) and _OPERATOR_RE.match(name)):
        raise BadMessageError(
            f"invalid operator name {name!r}: use [A-Za-z0-9][A-Za-z0-9_.@-]{{0,63}}"
        )
    return name


def operator_key(name: str) -> str:
    """Hash: an operator account (``role``, ``hash``: argon2id, ``created``)."""
    return f"{PREFIX}:operator:{check_operator(name)}"


def session_key(digest: str) -> str:
    """Hash with a TTL: a console session, by the SHA-256 of its cookie."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise BadMessageError("invalid session digest")
    return f"{PREFIX}:console:session:{digest}"


def failures_key(scope: str, who: str) -> str:
    """String with a TTL: failed sign-ins of one account or one client
    address (``who`` is hashed: any text is safe)."""
    import hashlib

    digest = hashlib.sha256(who.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{PREFIX}:console:failures:{scope}:{digest}"


# --- object keys ---------------------------------------------------------


def upload_object_key(door: str, camera: str, upload_id: str, ext: str = "jpg") -> str:
    """``uploads/<door>/<camera>/<upload_id>.<ext>``, every part validated."""
    return (
        f"{UPLOADS_PREFIX}{check_door(door)}/{check_camera(camera)}/"
        f"{check_upload_id(upload_id)}.{check_ext(ext)}"
    )


def parse_upload_key(key: str) -> tuple[str, str, str]:
    """``(door, camera, upload_id)`` of an upload object key; anything else
    (other prefixes, extra path parts, bad ids) raises BadMessageError."""
    match = _UPLOAD_KEY_RE.match(key) if isinstance(key, str) else None
    if match is None:
        raise BadMessageError(
            f"not an upload key: {key!r} (want uploads/<door>/<camera>/<32 hex>.<ext>)"
        )
    return match["door"], match["camera"], match["upload_id"]


def enroll_object_key(person: str, upload_id: str, ext: str = "jpg") -> str:
    """``enroll/<person>/<upload_id>.<ext>``, every part validated."""
    return f"{ENROLL_PREFIX}{check_person(person)}/{check_upload_id(upload_id)}.{check_ext(ext)}"


def parse_enroll_key(key: str) -> tuple[str, str]:
    """``(person, upload_id)`` of an enrolment object key, else BadMessageError."""
    match = _ENROLL_KEY_RE.match(key) if isinstance(key, str) else None
    if match is None:
        raise BadMessageError(
            f"not an enrolment key: {key!r} (want enroll/<person>/<32 hex>.<ext>)"
        )
    return match["person"], match["upload_id"]


__all__ = [
    "APPROACHES_DUE",
    "AUDIT_STREAM",
    "DOORS",
    "ENROLL_PREFIX",
    "GALLERY_CHANGES",
    "GALLERY_VERSION",
    "GROUPS",
    "IMAGE_CONTENT_TYPES",
    "IMAGE_EXTENSIONS",
    "OPERATORS",
    "PEOPLE",
    "PREFIX",
    "RECONCILER_CURSOR",
    "RECONCILER_LEASE",
    "UPLOADS_PREFIX",
    "approach_key",
    "check_camera",
    "check_door",
    "check_ext",
    "check_name",
    "check_operator",
    "check_person",
    "check_upload_id",
    "claim_key",
    "decision_key",
    "door_channel",
    "door_config_key",
    "door_key_version_key",
    "door_stream",
    "enroll_object_key",
    "failures_key",
    "group_key",
    "new_upload_id",
    "operator_key",
    "parse_enroll_key",
    "parse_upload_key",
    "pending_key",
    "person_groups_key",
    "person_key",
    "probe_key",
    "reply_key",
    "session_key",
    "upload_object_key",
]
