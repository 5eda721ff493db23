"""The encoder's use case: a batch of uploads in, probes in Redis and match
requests out.

For each batch the :class:`~services.encoder.batcher.Batcher` hands over:

1. stamp ``encode_start`` (queue wait = ``encode_start - ingested``);
2. fetch every object concurrently (bounded by ``FACEGATE_MAX_IMAGE_BYTES``);
3. decode each (bounded pixel count and expansion: a PNG declaring
   50000x50000, or a 117 KiB PNG of 6000x6000, is refused from its header
   before any pixel is allocated; see :mod:`facegate.engine.images`);
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
from dataclasses import dataclass, field

import numpy as np

from facegate.adapters.objectstore import ObjectStore
from facegate.adapters.replies import encode_reply, face_box
from facegate.adapters.store import EncoderStore
from facegate.core.errors import ImageError, PermanentError, TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.core.policy import is_stale
from facegate.engine.images import DEFAULT_MAX_PIXELS, decode_image
from facegate.engine.types import Face, FaceEncoder, Image
from services.encoder.settings import EncoderSettings

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


@dataclass
class Batch:
    """One batch on its way through the stages, with the times each ended."""

    requests: list[EncodeRequest]
    start: float
    expired: list[bool]
    raw: list[bytes | BaseException]
    fetched: float
    images: list[Image | BaseException] = field(default_factory=list)
    decoded: float = 0.0
    faces: dict[int, list[Face]] = field(default_factory=dict)
    engine_error: BaseException | None = None
    timings: dict[str, float] = field(default_factory=dict)
    embedded: float = 0.0

    def stamps(self, i: int) -> dict[str, float]:
        """Upload ``i``'s stamps with this batch's stages added."""
        return {
            **self.requests[i].stamps,
            "encode_start": self.start,
            "fetched": self.fetched,
            "decoded": self.decoded,
            "detected": self.timings.get("detected", self.embedded),
            "embedded": self.timings.get("embedded", self.embedded),
        }


TIMED_OUT = ImageError("past the deadline")
"""Placeholder fetched value of an upload that is not fetched (expired)."""


class EncoderService:
    """Runs batches; one per worker process (called from the batcher thread)."""

    def __init__(
        self,
        settings: EncoderSettings,
        objects: ObjectStore,
        store: EncoderStore,
        engine: FaceEncoder,
        send_match: Callable[[MatchRequest], object],
        *,
        clock: Callable[[], float] = time.time,
        fetch_threads: int = 8,
        max_pixels: int = DEFAULT_MAX_PIXELS,
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
        """An access upload the matcher will deny with ``timeout`` (the same
        rule, :func:`~facegate.core.policy.is_stale`): not worth fetching."""
        if request.kind is not UploadKind.ACCESS:
            return False
        return is_stale(request.stamps, now, self.settings.deadline_s, self.settings.clock_skew_s)

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
        retry) per request, in order. Stage by stage: fetch, decode, engine,
        answer."""
        if not requests:
            return []
        batch = self.fetch(requests)
        self.decode(batch)
        self.run_engine(batch)
        results = self.answer(batch)
        log.info(
            "batch of %d: fetch %.0f ms, decode %.0f ms, engine %.0f ms",
            len(requests),
            (batch.fetched - batch.start) * 1000,
            (batch.decoded - batch.fetched) * 1000,
            (batch.embedded - batch.decoded) * 1000,
        )
        return results

    def fetch(self, requests: Sequence[EncodeRequest]) -> Batch:
        """Stage 1: every object at once (uploads past their deadline are not fetched)."""
        start = self.clock()
        expired = [self._expired(r, start) for r in requests]
        raw = list(self._pool.map(self._fetch, requests, expired))
        return Batch(list(requests), start, expired, raw, fetched=self.clock())

    def decode(self, batch: Batch) -> None:
        """Stage 2: bytes to pixels (bounded pixel count), per upload."""
        batch.images = [self._decode(d) for d in batch.raw]
        batch.decoded = self.clock()

    def run_engine(self, batch: Batch) -> None:
        """Stage 3: one engine call for every decodable image of the batch; a
        failure of the engine itself is kept to answer every upload with it."""
        usable = [i for i, img in enumerate(batch.images) if not isinstance(img, BaseException)]
        if usable:
            try:
                found = self.engine.encode_images(
                    [batch.images[i] for i in usable],  # type: ignore[misc]
                    timings=batch.timings,
                )
                batch.faces = dict(zip(usable, found, strict=True))
            except Exception as exc:  # the engine failing must not lose the batch
                log.exception("face engine failed on a batch of %d", len(usable))
                batch.engine_error = exc
        batch.embedded = self.clock()

    def answer(self, batch: Batch) -> list[Encoded | BaseException]:
        """Stage 4: probe + match request (access) or reply (enrolment) per upload."""
        results: list[Encoded | BaseException] = []
        for i, request in enumerate(batch.requests):
            image = batch.images[i]
            if isinstance(image, TransientError):
                results.append(image)
                continue
            error, detail = self._error_of(batch, i)
            try:
                results.append(
                    self._finish(request, batch.faces.get(i, []), error, detail, batch.stamps(i))
                )
            except TransientError as exc:
                results.append(exc)
        return results

    def _error_of(self, batch: Batch, i: int) -> tuple[Reason | None, str]:
        """Why upload ``i`` gets no probe (``None``: it has one)."""
        request, image = batch.requests[i], batch.images[i]
        if batch.expired[i]:
            log.info("upload %s: past its deadline, not encoded", request.upload_id)
            return Reason.TIMEOUT, "older than FACEGATE_DEADLINE_S when its batch started"
        if isinstance(image, BaseException):
            log.info("upload %s (%s): %s", request.upload_id, request.key, image)
            return Reason.from_error(image), str(image)
        if batch.engine_error is not None:
            return Reason.INTERNAL_ERROR, f"face engine failed: {batch.engine_error}"
        return None, ""

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
            approach=request.approach,
        )
        try:
            self.send_match(match)
        except Exception as exc:  # kombu/redis raise many types
            raise _BrokerError(f"could not send the match of {request.upload_id}: {exc}") from exc
        return Encoded(request.upload_id, len(faces), error, match)


class _BrokerError(TransientError):
    """The broker refused the match task; the encode task retries."""


__all__ = ["Batch", "Encoded", "EncoderService", "enrol_reply"]
