"""Ingest's use cases (no HTTP here, see ``http.py``; wiring in ``app.py``).

::

    app = build(IngestSettings.from_env())              # services.ingest.app
    app.handle_event(body, token)                       # store webhook
    app.presign("front", "cam1", "alice", token)        # camera asks for a URL
    app.upload("front", "cam1", None, data, "image/jpeg", token)

What ingest does with an upload, whichever way it arrives: find the claim
(the badge bound to the object key when the URL was issued), build an
:class:`~facegate.core.messages.EncodeRequest` (stamps ``uploaded`` and
``ingested``) and send ``facegate.encode``. It never decodes images (the
encoder does).

Decisions taken here:

- **Unknown doors are not refused.** A door id must be well formed, but
  ingest does not look it up: a camera at an unconfigured door gets its URL,
  its upload is encoded, and the matcher records ``DENY unknown_door``, so
  every upload ends in exactly one decision that the audit stream shows.
- **No upload is lost.** When enqueueing fails (broker down), the caller gets
  :class:`EnqueueUnavailableError` (HTTP 503): MinIO retries the webhook (and
  keeps it in its queue dir), a camera retries its upload. The claim's
  ``enqueued`` field is written only *after* a successful send, so a retry is
  never mistaken for a duplicate; the price is that two deliveries racing
  each other may both send (the matcher's ``SET NX`` still gives one decision).
- **Duplicates are dropped.** The direct-upload endpoint enqueues itself and
  the store's webhook for that object then finds ``enqueued`` set; the same
  holds for webhook redeliveries.
- **An object without a claim** (written by something holding S3
  credentials, or whose claim expired) is still ingested, with no badge:
  verify doors deny it (``unknown_person``), identify doors decide on the face.
  An object whose claim names another key is treated the same way.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from facegate.adapters.objectstore import ObjectStore
from facegate.adapters.store import ClaimStore
from facegate.core import keys
from facegate.core.errors import (
    BadMessageError,
    FacegateError,
    TransientError,
)
from facegate.core.messages import EncodeRequest, UploadKind
from facegate.runtime.entrypoint import Closable
from services.ingest.settings import IngestSettings
from services.ingest.webhook import ObjectCreated, parse_events, select

log = logging.getLogger("services.ingest")

CLAIM_GRACE_S = 60
"""The claim outlives its URL by this much (the webhook arrives after the PUT)."""

CONTENT_TYPES = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/gif": "gif",
}


class UnauthorizedError(FacegateError):
    """A missing or wrong token (HTTP 401)."""


class EnqueueUnavailableError(TransientError):
    """The broker did not take the encode task; the sender must retry (HTTP 503)."""


@dataclass(frozen=True)
class Presigned:
    upload_id: str
    key: str
    url: str
    expires_in: int


@dataclass(frozen=True)
class Uploaded:
    upload_id: str
    key: str


@dataclass(frozen=True)
class EventResult:
    """What one webhook body led to."""

    enqueued: list[str] = field(default_factory=list)
    """Upload ids sent to the encoder."""
    duplicates: int = 0
    ignored: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "enqueued": len(self.enqueued),
            "upload_ids": self.enqueued,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
        }


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def ext_for(content_type: str | None) -> str:
    """Object-key extension for an upload's content type (``bin`` when unknown)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return CONTENT_TYPES.get(base, "bin")


class IngestApp:
    """Ingest's use cases over an object store, the claim store and a
    sender of encode requests (Celery in production); ``resources`` are
    closed with the app."""

    def __init__(
        self,
        settings: IngestSettings,
        store: ObjectStore,
        claims: ClaimStore,
        enqueue: Callable[[EncodeRequest], object],
        *,
        clock: Callable[[], float] = time.time,
        resources: Sequence[Closable] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.claims = claims
        self.enqueue = enqueue
        self.clock = clock
        self._resources = tuple(resources)

    # --- auth -------------------------------------------------------------------

    def check_camera_token(self, token: str | None) -> None:
        """UnauthorizedError unless ``token`` is the camera token."""
        if not token_matches(token, self.settings.camera_token.get_secret_value()):
            raise UnauthorizedError("camera token missing or wrong")

    def _webhook(self, token: str | None) -> None:
        if not token_matches(token, self.settings.webhook_token.get_secret_value()):
            raise UnauthorizedError("webhook token missing or wrong")

    # --- use cases --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"}`` when Redis answers, else TransientError."""
        self.claims.ping()
        return {"status": "ok", "bucket": self.settings.bucket}

    def presign(
        self,
        door: str,
        camera: str,
        badge: str | None,
        token: str | None,
        ext: str = "jpg",
        approach: str | None = None,
    ) -> Presigned:
        """A presigned PUT URL for one fresh key, with the badge claim stored
        (and the approach the frame belongs to, when given)."""
        self.check_camera_token(token)
        upload_id = keys.new_upload_id()
        key = keys.upload_object_key(door, camera, upload_id, ext)
        if badge is not None:
            keys.check_person(badge)
        if approach is not None:
            keys.check_upload_id(approach)
        expires = self.settings.presign_expiry_s
        url = self.store.presigned_put(
            key, expires, public_endpoint=self.settings.s3_public_endpoint
        )
        self.claims.put_claim(
            upload_id,
            key=key,
            door=door,
            camera=camera,
            badge=badge,
            ttl_s=expires + CLAIM_GRACE_S,
            approach=approach,
        )
        log.info("presigned %s (door %s, camera %s)", key, door, camera)
        return Presigned(upload_id, key, url, expires)

    def upload(
        self,
        door: str,
        camera: str,
        badge: str | None,
        data: bytes,
        content_type: str | None,
        token: str | None,
        approach: str | None = None,
    ) -> Uploaded:
        """Store the bytes under a fresh key and enqueue them (the store's own
        webhook for that object is then a duplicate)."""
        self.check_camera_token(token)
        if not data:
            raise BadMessageError("empty upload")
        if len(data) > self.settings.max_upload_bytes:
            raise BadMessageError(
                f"upload of {len(data)} bytes exceeds {self.settings.max_upload_bytes}"
            )
        if badge is not None:
            keys.check_person(badge)
        if approach is not None:
            keys.check_upload_id(approach)
        upload_id = keys.new_upload_id()
        key = keys.upload_object_key(door, camera, upload_id, ext_for(content_type))
        self.claims.put_claim(
            upload_id,
            key=key,
            door=door,
            camera=camera,
            badge=badge,
            ttl_s=self.settings.presign_expiry_s + CLAIM_GRACE_S,
            direct=True,  # enqueued here: the store's webhook for it is a duplicate
            approach=approach,
        )
        ctype = (content_type or "application/octet-stream").split(";", 1)[0].strip()
        self.store.put(key, data, ctype or "application/octet-stream")
        uploaded = self.clock()
        self._ingest(ObjectCreated(self.store.bucket, key, len(data), None), uploaded, direct=True)
        return Uploaded(upload_id, key)

    def handle_event(self, body: bytes, token: str | None) -> EventResult:
        """A store webhook body: enqueue each new upload object once."""
        self._webhook(token)
        received = self.clock()
        events = parse_events(body)
        wanted = select(events, self.settings.bucket, keys.UPLOADS_PREFIX)
        ignored = len(events) - len(wanted)
        enqueued: list[str] = []
        duplicates = 0
        for event in wanted:
            try:
                keys.parse_upload_key(event.key)
            except BadMessageError:
                log.warning("ignoring object %r: not an upload key", event.key)
                ignored += 1
                continue
            upload_id = self._ingest(event, received)
            if upload_id is None:
                duplicates += 1
            else:
                enqueued.append(upload_id)
        return EventResult(enqueued, duplicates, ignored)

    # --- the common path ------------------------------------------------------------

    def _ingest(self, event: ObjectCreated, uploaded: float, *, direct: bool = False) -> str | None:
        """Enqueue one upload object; ``None`` when it was enqueued before."""
        door, camera, upload_id = keys.parse_upload_key(event.key)
        claim = self.claims.get_claim(upload_id)
        badge: str | None = None
        if claim is None:
            log.warning("no claim for %s: ingesting without a badge", event.key)
        elif claim.key != event.key:
            log.warning(
                "claim of %s names %s, not %s: ingesting without a badge",
                upload_id,
                claim.key,
                event.key,
            )
            claim = None
        else:
            badge = claim.badge
            if not direct and claim.direct:
                log.info("event for direct upload %s: already handled", event.key)
                return None
            if claim.enqueued_at is not None:
                log.info("duplicate event for %s (enqueued at %s)", event.key, claim.enqueued_at)
                return None
        request = EncodeRequest(
            upload_id=upload_id,
            kind=UploadKind.ACCESS,
            bucket=event.bucket,
            key=event.key,
            door=door,
            camera=camera,
            badge=badge,
            stamps={"uploaded": uploaded, "ingested": self.clock()},
            approach=claim.approach if claim is not None else None,
        )
        try:
            self.enqueue(request)
        except Exception as exc:  # the broker's errors are kombu's/redis's, many types
            raise EnqueueUnavailableError(f"could not enqueue {event.key}: {exc}") from exc
        if claim is not None:
            self._mark_enqueued(upload_id, request.stamps["ingested"])
        log.info("enqueued %s (door %s, camera %s)", upload_id, door, camera)
        return upload_id

    def _mark_enqueued(self, upload_id: str, when: float) -> None:
        try:
            self.claims.mark_enqueued(upload_id, when)
        except TransientError as exc:
            # The task is sent; losing the duplicate marker only costs a
            # possible second encode (the matcher still decides once).
            log.warning("could not mark %s enqueued: %s", upload_id, exc)

    def close(self) -> None:
        self.claims.close()
        for resource in self._resources:
            resource.close()


__all__ = [
    "CLAIM_GRACE_S",
    "CONTENT_TYPES",
    "EnqueueUnavailableError",
    "EventResult",
    "IngestApp",
    "Presigned",
    "UnauthorizedError",
    "Uploaded",
    "ext_for",
    "token_matches",
]
