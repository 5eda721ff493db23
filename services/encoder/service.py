"""The encoder's use case: a batch of uploads in, probes in Redis and match
requests out.

For each batch the :class:`~services.encoder.batcher.Batcher` hands over:

1. stamp ``encode_start`` (queue wait = ``encode_start - ingested``);
2. fetch every object concurrently (bounded by ``FACEGATE_MAX_IMAGE_BYTES``);
3. decode each (bounded pixel count: a PNG declaring 50000x50000 is refused
   from its header, before any pixel is allocated);
4. run the face engine once on every decodable image of the batch;
5. access uploads: write the probe (float32 encodings, model id, dimension,
   format version, boxes; TTL ``FACEGATE_PROBE_TTL_S``) and send
   ``facegate.match``; enrolment uploads: push the faces to the reply list the
   enrolling CLI waits on.

Per-upload failures never sink the batch: an unusable image becomes a match
request carrying ``error=bad_image`` (so the matcher denies it with that
reason); a failure of the engine itself marks every upload of the batch
``internal_error``. Only infrastructure errors (object store or Redis
unreachable, broker down) come back as exceptions, for the task to retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from facegate.adapters.objectstore import ObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.adapters.replies import encode_reply, face_box
from facegate.core.errors import ImageError, PermanentError, TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.core.policy import DEADLINE_STAMPS
from facegate.engine.images import decode_image
from facegate.engine.types import Face, FaceEncoder, Image
from facegate.runtime.settings import EncoderSettings

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Encoded:
    """What happened to one upload: the match request sent for it (access)
    or the reply pushed (enrolment)."""

    upload_id: str
    faces: int
    error: Reason | None
    match: MatchRequest | None = None


def enrol_reply(
    request: EncodeRequest,
    faces: Sequence[Face],
    model_id: str,
    dim: int,
    error: Reason | None,
    detail: str = "",
) -> bytes:
    """The reply the enrolling CLI reads."""
    return encode_reply(
        upload_id=request.upload_id,
        person=request.person,
        key=request.key,
        faces=faces,
        model_id=model_id,
        dim=dim,
        error=None if error is None else str(error),
        detail=detail,
    )


TIMED_OUT = ImageError("past the deadline")
"""Placeholder fetched value of an upload that is not fetched (expired)."""


class EncoderService:
    """Runs batches; one per worker process (called from the batcher thread)."""

    def __init__(
        self,
        settings: EncoderSettings,
        objects: ObjectStore,
        store: RedisStore,
        engine: FaceEncoder,
        send_match: Callable[[MatchRequest], object],
        *,
        clock: Callable[[], float] = time.time,
        fetch_threads: int = 8,
        max_pixels: int = 40_000_000,
    ) -> None:
        self.settings = settings
        self.objects = objects
        self.store = store
        self.engine = engine
        self.send_match = send_match
        self.clock = clock
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(max_workers=fetch_threads, thread_name_prefix="fetch")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- stages -------------------------------------------------------------------

    def _expired(self, request: EncodeRequest, now: float) -> bool:
        """An access upload already past the door's deadline (the matcher
        would deny it with ``timeout``): not worth encoding."""
        if request.kind is not UploadKind.ACCESS:
            return False
        times = [request.stamps[s] for s in DEADLINE_STAMPS if s in request.stamps]
        return bool(times) and now - min(times) > self.settings.deadline_s

    def _fetch(self, request: EncodeRequest, expired: bool = False) -> bytes | BaseException:
        if expired:
            return TIMED_OUT  # answered with timeout below; not worth fetching
        try:
            return self.objects.get(request.key, self.settings.max_image_bytes)
        except (PermanentError, TransientError) as exc:
            return exc

    def _decode(self, data: bytes | BaseException) -> Image | BaseException:
        if isinstance(data, BaseException):
            return data
        try:
            return decode_image(data, max_pixels=self.max_pixels)
        except PermanentError as exc:
            return exc

    def process_batch(
        self, requests: Sequence[EncodeRequest]
    ) -> list[Encoded | BaseException]:
        """Encode a batch; one :class:`Encoded` (or a transient exception to
        retry) per request, in order."""
        if not requests:
            return []
        start = self.clock()
        stamps: list[dict[str, float]] = [
            {**r.stamps, "encode_start": start} for r in requests
        ]
        expired = [self._expired(r, start) for r in requests]
        raw = list(self._pool.map(self._fetch, requests, expired))
        fetched = self.clock()
        images = [self._decode(d) for d in raw]
        decoded = self.clock()
        usable = [i for i, img in enumerate(images) if not isinstance(img, BaseException)]
        faces: dict[int, list[Face]] = {}
        engine_error: BaseException | None = None
        timings: dict[str, float] = {}
        if usable:
            try:
                found = self.engine.encode_images(
                    [images[i] for i in usable],  # type: ignore[misc]
                    timings=timings,
                )
                faces = dict(zip(usable, found, strict=True))
            except Exception as exc:  # the engine failing must not lose the batch
                log.exception("face engine failed on a batch of %d", len(usable))
                engine_error = exc
        embedded = self.clock()
        results: list[Encoded | BaseException] = []
        for i, request in enumerate(requests):
            s = stamps[i]
            s["fetched"] = fetched
            s["decoded"] = decoded
            s["detected"] = timings.get("detected", embedded)
            s["embedded"] = timings.get("embedded", embedded)
            image = images[i]
            error: Reason | None = None
            detail = ""
            if isinstance(image, TransientError):
                results.append(image)
                continue
            if expired[i]:
                error = Reason.TIMEOUT
                detail = "older than FACEGATE_DEADLINE_S when its batch started"
                log.info("upload %s: past its deadline, not encoded", request.upload_id)
            elif isinstance(image, BaseException):
                error = Reason.from_error(image)
                detail = str(image)
                log.info("upload %s (%s): %s", request.upload_id, request.key, image)
            elif engine_error is not None:
                error = Reason.INTERNAL_ERROR
                detail = f"face engine failed: {engine_error}"
            try:
                results.append(self._finish(request, faces.get(i, []), error, detail, s))
            except TransientError as exc:
                results.append(exc)
        log.info(
            "batch of %d: fetch %.0f ms, decode %.0f ms, engine %.0f ms",
            len(requests),
            (fetched - start) * 1000,
            (decoded - fetched) * 1000,
            (embedded - decoded) * 1000,
        )
        return results

    def _finish(
        self,
        request: EncodeRequest,
        faces: list[Face],
        error: Reason | None,
        detail: str,
        stamps: dict[str, float],
    ) -> Encoded:
        model_id, dim = self.engine.model_id, self.engine.dimension
        if error is not None:
            faces = []
        if request.kind is UploadKind.ENROLL:
            reply = enrol_reply(request, faces, model_id, dim, error, detail)
            self.store.push_reply(request.upload_id, reply)
            return Encoded(request.upload_id, len(faces), error)
        if error is None:
            encodings = (
                np.stack([f.encoding for f in faces]).astype(np.float32)
                if faces
                else np.zeros((0, dim), dtype=np.float32)
            )
            self.store.put_probe(
                request.upload_id,
                encodings,
                model_id,
                ttl_s=self.settings.probe_ttl_s,
                boxes=[face_box(f) for f in faces],
                dim=dim,
            )
        match = MatchRequest(
            upload_id=request.upload_id,
            kind=request.kind,
            door=request.door,
            camera=request.camera,
            badge=request.badge,
            faces=len(faces),
            error=error,
            model_id=model_id,
            stamps=stamps,
        )
        try:
            self.send_match(match)
        except Exception as exc:  # kombu/redis raise many types
            raise _BrokerError(f"could not send the match of {request.upload_id}: {exc}") from exc
        return Encoded(request.upload_id, len(faces), error, match)


class _BrokerError(TransientError):
    """The broker refused the match task; the encode task retries."""


__all__ = ["Encoded", "EncoderService", "enrol_reply"]
