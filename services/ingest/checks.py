"""What ingest refuses, and with which error: tokens, names, doors, media types.

The errors map to HTTP statuses in ``http.py``: :class:`UnauthorizedError`
401, :class:`UnknownDoorError` 404, :class:`UnsupportedMediaError` 415,
:class:`EnqueueUnavailableError` 503 (retry). The accepted image types are
:data:`facegate.core.keys.IMAGE_EXTENSIONS` (what the engine decodes).
"""

from __future__ import annotations

import hmac

from facegate.core import keys
from facegate.core.errors import FacegateError, TransientError


class UnauthorizedError(FacegateError):
    """A missing or wrong token (HTTP 401)."""


class UnknownDoorError(FacegateError):
    """The door is not configured (HTTP 404)."""


class UnsupportedMediaError(FacegateError):
    """Not an image type the engine decodes (HTTP 415)."""


class EnqueueUnavailableError(TransientError):
    """The broker did not take the task; the sender must retry (HTTP 503)."""


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def media_type(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type header, lower case, no parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def ext_for(content_type: str | None) -> str:
    """Object-key extension of an accepted image content type; raises
    :class:`UnsupportedMediaError` for anything else."""
    ext = keys.IMAGE_CONTENT_TYPES.get(media_type(content_type))
    if ext is None:
        accepted = ", ".join(sorted(set(keys.IMAGE_CONTENT_TYPES)))
        raise UnsupportedMediaError(
            f"content type {media_type(content_type) or '(none)'!r} is not accepted; "
            f"send one of {accepted}"
        )
    return ext


def image_ext(ext: str) -> str:
    """The lower-cased extension when it names an image type the engine
    decodes; raises :class:`UnsupportedMediaError` otherwise."""
    low = ext.lower().lstrip(".") if isinstance(ext, str) else ""
    if low not in keys.IMAGE_EXTENSIONS:
        accepted = ", ".join(sorted(keys.IMAGE_EXTENSIONS))
        raise UnsupportedMediaError(f"extension {ext!r} is not accepted; use one of {accepted}")
    return low


def presign_ext(ext: str, content_type: str | None) -> str:
    """The object-key extension of a presigned upload: ``ext`` when it is
    accepted and agrees with ``content_type`` (when given); raises
    :class:`UnsupportedMediaError` otherwise."""
    ext = image_ext(ext)
    types = keys.IMAGE_EXTENSIONS
    if content_type is not None and types[ext_for(content_type)] != types[ext]:
        raise UnsupportedMediaError(
            f"content type {media_type(content_type)!r} does not go with extension {ext!r}"
        )
    return ext


def check_names(camera: str, badge: str | None, approach: str | None) -> None:
    """BadMessageError (HTTP 400) for a malformed camera id, badge or
    approach id (32 hex digits)."""
    keys.check_camera(camera)
    if badge is not None:
        keys.check_person(badge)
    if approach is not None:
        keys.check_upload_id(approach)


__all__ = [
    "EnqueueUnavailableError",
    "UnauthorizedError",
    "UnknownDoorError",
    "UnsupportedMediaError",
    "check_names",
    "ext_for",
    "image_ext",
    "media_type",
    "presign_ext",
    "token_matches",
]
