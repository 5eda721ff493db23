"""Ingest's use cases (no HTTP here, see ``http.py``; wiring in ``app.py``).

::

    app = build(IngestSettings.from_env())              # services.ingest.app
    app.handle_event(body, token)                       # store webhook
    app.presign("front", "cam1", "alice", token)        # camera asks for a URL
    app.presign("lobby", "cam1", None, token, approach=approach_id)  # a frame of an approach
    app.upload("front", "cam1", None, data, "image/jpeg", token)
    app.reconcile(info)                                 # the reconciler found an object

What ingest does with an upload object, whichever way it learns of it (the
store's webhook, its own direct upload, the reconciler): if the upload is
already decided, nothing; find the claim (the badge, and the approach when
the frame is one of several, bound to the object key when the URL was
issued); establish when the object was written; then

- claimed: build an :class:`~facegate.core.messages.EncodeRequest` (with the
  claim's badge and approach) and send ``facegate.encode``;
- unclaimed (no claim, or a claim that names another key): send
  ``facegate.match`` with ``error=unclaimed``, so the matcher records and
  publishes ``DENY unclaimed`` (or ``timeout`` when it is stale anyway);
  the image is never decoded. The approach id lives in the claim only, so
  an unclaimed upload is decided on its own, never as a frame of an
  approach (nothing an object's writer controls joins it to one);

and mark the upload *pending* (``facegate:pending:<id>``, TTL
``FACEGATE_RECONCILE_RETRY_S``) so the reconciler leaves it alone while its
decision is on its way. Ingest never decodes images.

Decisions taken here:

- **Freshness comes from the object.** ``stamps["uploaded"]`` is when the
  store wrote the object: the webhook body's own time (MinIO's
  ``eventTime``, SeaweedFS's chunk write time), else the object's
  Last-Modified (a stat), for direct uploads the moment ingest received the
  bytes. Never when ingest heard of it: a replayed or late webhook is
  exactly as old as its object.
- **Unknown doors are refused up front.** Presign and direct upload answer
  404 for a door that is not configured (a door removed after the URL was
  issued is still decided by the matcher: ``DENY unknown_door``). Only the
  image types the engine decodes are accepted (415 otherwise).
- **Claims outlive their URL by the deadline plus the allowed clock skew
  plus a margin**, so an upload can only find its claim expired when it is
  stale anyway (then it is ``timeout``, not ``unclaimed``; see
  :mod:`facegate.core.policy` for the order of the rules).
- **No upload is lost.** A failed send (broker down) is
  :class:`EnqueueUnavailableError` (HTTP 503): MinIO retries the webhook, a
  camera its upload, and the reconciler (``reconciler.py``) sends whatever
  is still undecided and not pending after a grace period. The ``enqueued``
  and pending marks are written only *after* a successful send (two racing
  deliveries may both send; the matcher's ``SET NX`` still decides once).
- **Duplicates are dropped.** A decided upload is never sent again; the
  direct-upload endpoint enqueues itself and the store's webhook for that
  object then finds ``enqueued`` set; the same holds for webhook redeliveries.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from facegate.adapters import metrics
from facegate.adapters.objectstore import ObjectInfo, ObjectStore
from facegate.adapters.store import Claim, IngestStore
from facegate.core import keys
from facegate.core.errors import BadMessageError, TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.runtime.entrypoint import Closable
from services.ingest.checks import (
    EnqueueUnavailableError,
    UnauthorizedError,
    UnknownDoorError,
    UnsupportedMediaError,
    check_names,
    ext_for,
    image_ext,
    media_type,
    presign_ext,
    token_matches,
)
from services.ingest.results import EventResult, Presigned, Uploaded
from services.ingest.settings import IngestSettings
from services.ingest.webhook import ObjectCreated, parse_events, select

log = logging.getLogger("services.ingest")

CLAIM_GRACE_S = 60
"""Margin of a claim beyond its URL's life, the deadline and the allowed skew."""


class IngestApp:
    """Ingest's use cases over an object store, ingest's state store and two
    senders: ``enqueue`` (``facegate.encode``) and ``send_match``
    (``facegate.match``, for uploads denied before encoding); Celery in
    production. ``resources`` are closed with the app."""

    def __init__(
        self,
        settings: IngestSettings,
        store: ObjectStore,
        claims: IngestStore,
        enqueue: Callable[[EncodeRequest], object],
        send_match: Callable[[MatchRequest], object],
        *,
        clock: Callable[[], float] = time.time,
        resources: Sequence[Closable] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.claims = claims
        self.enqueue = enqueue
        self.send_match = send_match
        self.clock = clock
        self._resources = tuple(resources)

    @property
    def claim_ttl_s(self) -> int:
        """How long a claim lives: its URL's life + the deadline + the
        allowed clock skew + :data:`CLAIM_GRACE_S`."""
        s = self.settings
        return s.presign_expiry_s + math.ceil(s.deadline_s + s.clock_skew_s) + CLAIM_GRACE_S

    # --- auth and checks ---------------------------------------------------------

    def check_camera_token(self, token: str | None) -> None:
        """UnauthorizedError unless ``token`` is the camera token."""
        if not token_matches(token, self.settings.camera_token.get_secret_value()):
            raise UnauthorizedError("camera token missing or wrong")

    def _webhook(self, token: str | None) -> None:
        if not token_matches(token, self.settings.webhook_token.get_secret_value()):
            raise UnauthorizedError("webhook token missing or wrong")

    def check_door(self, door: str) -> None:
        """BadMessageError for a malformed id, UnknownDoorError for a door
        that is not configured."""
        keys.check_door(door)
        if self.claims.get_door(door) is None:
            raise UnknownDoorError(f"door {door!r} is not configured")

    def check_upload(
        self,
        door: str,
        camera: str,
        content_type: str | None,
        badge: str | None = None,
        approach: str | None = None,
    ) -> str:
        """Everything a direct upload is refused for before its body is read;
        returns the object-key extension."""
        check_names(camera, badge, approach)
        self.check_door(door)
        return ext_for(content_type)

    # --- use cases --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Liveness: ``{"status": "ok", "bucket": ...}``, touching no backend."""
        return {"status": "ok", "bucket": self.settings.bucket}

    def ready(self) -> dict[str, str]:
        """Readiness: Redis answers and the object store answers for the
        bucket; TransientError (or ConfigError: refused credentials) otherwise."""
        self.claims.ping()
        self.store.stat(keys.UPLOADS_PREFIX + "readyz")  # a miss is an answer too
        return {"status": "ready", "redis": "ok", "s3": "ok"}

    def presign(
        self,
        door: str,
        camera: str,
        badge: str | None,
        token: str | None,
        ext: str = "jpg",
        content_type: str | None = None,
        approach: str | None = None,
    ) -> Presigned:
        """A presigned PUT URL for one fresh key, with the badge claim stored
        (and the approach the frame belongs to, when given)."""
        self.check_camera_token(token)
        check_names(camera, badge, approach)
        self.check_door(door)
        ext = presign_ext(ext, content_type)
        upload_id = keys.new_upload_id()
        key = keys.upload_object_key(door, camera, upload_id, ext)
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
            ttl_s=self.claim_ttl_s,
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
        *,
        received: float | None = None,
    ) -> Uploaded:
        """Store the bytes under a fresh key and enqueue them (the store's own
        webhook for that object is then a duplicate). ``approach``: the
        approach the frame belongs to, or ``None``. ``received``: when the
        request arrived (its written-at; default now)."""
        received = self.clock() if received is None else received
        self.check_camera_token(token)
        ext = self.check_upload(door, camera, content_type, badge, approach)
        if not data:
            raise BadMessageError("empty upload")
        if len(data) > self.settings.max_upload_bytes:
            raise BadMessageError(
                f"upload of {len(data)} bytes exceeds {self.settings.max_upload_bytes}"
            )
        upload_id = keys.new_upload_id()
        key = keys.upload_object_key(door, camera, upload_id, ext)
        self.claims.put_claim(
            upload_id,
            key=key,
            door=door,
            camera=camera,
            badge=badge,
            ttl_s=self.claim_ttl_s,
            direct=True,  # enqueued here: the store's webhook for it is a duplicate
            approach=approach,
        )
        self.store.put(key, data, keys.IMAGE_EXTENSIONS[ext])
        created = ObjectCreated(self.store.bucket, key, len(data), None, written_at=received)
        self._ingest(created, direct=True)
        return Uploaded(upload_id, key)

    def handle_event(self, body: bytes, token: str | None) -> EventResult:
        """A store webhook body: send each new upload object on once."""
        self._webhook(token)
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
            upload_id = self._ingest(event)
            if upload_id is None:
                duplicates += 1
            else:
                enqueued.append(upload_id)
        return EventResult(enqueued, duplicates, ignored)

    def reconcile(self, info: ObjectInfo) -> str | None:
        """Send on an object the reconciler found undecided and not pending
        (its webhook never arrived, or its task was lost); ``None`` when it
        turned out decided meanwhile."""
        created = ObjectCreated(
            self.store.bucket, info.key, info.size, info.etag, written_at=info.last_modified
        )
        return self._ingest(created, reconciling=True)

    # --- the common path ------------------------------------------------------------

    def _usable_claim(self, upload_id: str, key: str) -> Claim | None:
        claim = self.claims.get_claim(upload_id)
        if claim is None:
            log.warning("no claim for %s: unclaimed", key)
            return None
        if claim.key != key:
            log.warning("claim of %s names %s, not %s: unclaimed", upload_id, claim.key, key)
            return None
        return claim

    def _written_at(self, event: ObjectCreated, now: float) -> float | None:
        """When the store wrote the object: the event's own time, else the
        object's Last-Modified; ``None`` when the object is gone (the upload
        is then stale by rule: its freshness cannot be shown)."""
        written = event.written_at
        if written is None:
            info = self.store.stat(event.key)
            written = None if info is None else info.last_modified
            if written is None:
                log.warning("%s: no write time (object missing?): it will be timeout", event.key)
        if written is not None and written - now > self.settings.clock_skew_s:
            log.warning(
                "%s was written %.1f s in the future: the object store's clock is ahead "
                "by more than FACEGATE_CLOCK_SKEW_S=%s (it will be timeout)",
                event.key,
                written - now,
                self.settings.clock_skew_s,
            )
        return written

    def _ingest(
        self, event: ObjectCreated, *, direct: bool = False, reconciling: bool = False
    ) -> str | None:
        """Send one upload object on; ``None`` when it needs nothing (decided,
        or already sent)."""
        door, camera, upload_id = keys.parse_upload_key(event.key)
        if self.claims.get_decision(upload_id) is not None:
            log.info("%s is already decided: nothing to do", event.key)
            return None
        claim = self._usable_claim(upload_id, event.key)
        if claim is not None and not reconciling:
            if not direct and claim.direct:
                log.info("event for direct upload %s: already handled", event.key)
                return None
            if claim.enqueued_at is not None:
                log.info("duplicate event for %s (enqueued at %s)", event.key, claim.enqueued_at)
                return None
        now = self.clock()
        written = self._written_at(event, now)
        stamps = {"ingested": now} if written is None else {"uploaded": written, "ingested": now}
        try:
            if claim is None:
                self.send_match(
                    MatchRequest.denied(
                        upload_id, door, camera, reason=Reason.UNCLAIMED, stamps=stamps
                    )
                )
            else:
                self.enqueue(
                    EncodeRequest(
                        upload_id=upload_id,
                        kind=UploadKind.ACCESS,
                        bucket=event.bucket,
                        key=event.key,
                        door=door,
                        camera=camera,
                        badge=claim.badge,
                        stamps=stamps,
                        approach=claim.approach,
                    )
                )
        except Exception as exc:  # the broker's errors are kombu's/redis's, many types
            metrics.backend_error("broker")
            raise EnqueueUnavailableError(f"could not send {event.key} on: {exc}") from exc
        source = "reconciler" if reconciling else "direct" if direct else "webhook"
        metrics.INGESTED.labels(source, "unclaimed" if claim is None else "encode").inc()
        self._mark_sent(upload_id, now, claimed=claim is not None)
        log.info(
            "%s %s (door %s, camera %s)%s",
            "enqueued" if claim is not None else "denied unclaimed",
            upload_id,
            door,
            camera,
            " [reconciler]" if reconciling else "",
        )
        return upload_id

    def _mark_sent(self, upload_id: str, when: float, *, claimed: bool) -> None:
        try:
            if claimed:
                self.claims.mark_enqueued(upload_id, when)
            self.claims.mark_pending(upload_id, self.settings.reconcile_retry_s)
        except TransientError as exc:
            # The task is sent; losing the markers only costs a possible
            # second send (the matcher still decides once).
            log.warning("could not mark %s sent: %s", upload_id, exc)

    def close(self) -> None:
        self.claims.close()
        for resource in self._resources:
            resource.close()


__all__ = [
    "CLAIM_GRACE_S",
    "EnqueueUnavailableError",
    "EventResult",
    "IngestApp",
    "Presigned",
    "UnauthorizedError",
    "UnknownDoorError",
    "UnsupportedMediaError",
    "Uploaded",
    "ext_for",
    "image_ext",
    "media_type",
    "token_matches",
]
