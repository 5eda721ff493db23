"""The encoder's use case: a batch of uploads in, probes in Redis and match
requests out.

For each batch the :class:`~services.encoder.batcher.Batcher` hands over,
three stages (each run by its own thread of the
:class:`~services.encoder.pipeline.Pipeline`, so consecutive batches overlap):

1. ``prepare``: stamp ``encode_start`` (queue wait = ``encode_start -
   ingested``); fetch every object concurrently (bounded by
   ``FACEGATE_MAX_IMAGE_BYTES``), except the access uploads already stale;
   decode each (bounded pixel count and expansion: a PNG declaring
   50000x50000, or a 117 KiB PNG of 6000x6000, is refused from its header
   before any pixel is allocated; see :mod:`facegate.engine.images`);
2. ``engine``: stamp ``engine_start``; drop the access uploads that went
   stale while their batch waited for the engine; run the face engine once
   on every decodable image of the batch (of every batch waiting for the
   engine, when several are: under load the engine's call grows instead of
   its queue), then let go of the pixels;
3. ``answer``: access uploads: write the probe (float32 encodings, model id,
   dimension, format version, boxes; TTL ``FACEGATE_PROBE_TTL_S``) and send
   ``facegate.match``; enrolment uploads: push the faces to the reply list the
   enrolling CLI waits on.

"Stale" is the matcher's own rule, :func:`facegate.core.policy.is_stale`,
on the upload's written-at stamp (``uploaded``: when the object store wrote
it): written more than ``FACEGATE_DEADLINE_S`` before, more than
``FACEGATE_CLOCK_SKEW_S`` after, or never stamped. Such an upload would be
denied ``timeout`` whatever its face, so it is answered ``timeout`` without
the engine's time, which is left to fresh uploads.

Per-upload failures never sink the batch: an unusable image becomes a match
request carrying ``error=bad_image`` (so the matcher denies it with that
reason); a failure of the engine itself, or any stage raising, marks every
upload of that batch (and only of that batch) ``internal_error``. Only
infrastructure errors (object store or Redis unreachable, broker down) come
back as exceptions, for the task to retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from facegate.adapters import metrics
from facegate.adapters.objectstore import ObjectStore
from facegate.adapters.replies import encode_reply, face_box
from facegate.adapters.store import EncoderStore
from facegate.core.errors import ImageError, PermanentError, TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.core.policy import is_stale
from facegate.engine.images import DEFAULT_MAX_PIXELS, decode_image
from facegate.engine.types import Face, FaceEncoder, Image
from services.encoder.pipeline import Job
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
    engine_start: float = 0.0
    embedded: float = 0.0

    def stamps(self, i: int) -> dict[str, float]:
        """Upload ``i``'s stamps with this batch's stages added."""
        stamps = {
            **self.requests[i].stamps,
            "encode_start": self.start,
            "fetched": self.fetched,
        }
        if self.decoded:
            stamps["decoded"] = self.decoded
        if self.engine_start:
            stamps["engine_start"] = self.engine_start
        if self.embedded:
            stamps["detected"] = self.timings.get("detected", self.embedded)
            stamps["embedded"] = self.timings.get("embedded", self.embedded)
        return stamps

    def release_pixels(self) -> None:
        """Drop the fetched bytes and decoded pixels (kept: the errors)."""
        self.raw = [r if isinstance(r, BaseException) else b"" for r in self.raw]
        self.images = [img if isinstance(img, BaseException) else _RELEASED for img in self.images]


_RELEASED: Image = np.zeros((0, 0, 3), dtype=np.uint8)
"""Stands in for a decoded image once the engine is done with it."""

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
        job: Job[EncodeRequest] = Job(list(requests), [])
        self.prepare(job)
        self.engine_stage([job])
        return self.answer_job(job)

    # --- the pipeline's stages (each on a Job; see services.encoder.pipeline) -------

    def prepare(self, job: Job[EncodeRequest]) -> None:
        """Fetch and decode the batch."""
        batch = self.fetch(job.items)
        job.value = batch
        self.decode(batch)

    def engine_stage(self, jobs: Sequence[Job[EncodeRequest]]) -> None:
        """The face engine once over the batches waiting for it (in order);
        then their pixels are let go."""
        batches: list[Batch] = [job.value for job in jobs]
        start = self.clock()
        for batch in batches:
            batch.engine_start = start
            self._expire_waiting(batch, start)
        self.run_engine(*batches)
        for batch in batches:
            batch.release_pixels()
        first = batches[0]
        metrics.ENGINE_SECONDS.observe(max(0.0, first.embedded - start))
        log.info(
            "engine: %d batch(es), %d uploads: fetch %.0f ms, decode %.0f ms, wait %.0f ms, "
            "engine %.0f ms",
            len(batches),
            sum(len(b.requests) for b in batches),
            (first.fetched - first.start) * 1000,
            (first.decoded - first.fetched) * 1000,
            (start - first.decoded) * 1000,
            (first.embedded - start) * 1000,
        )

    def answer_job(self, job: Job[EncodeRequest]) -> list[Encoded | BaseException]:
        """The last stage: the batch's answers, or, when a stage raised, a
        DENY ``internal_error`` (an error reply for enrolments) for each of
        its uploads."""
        if job.failure is None:
            return self.answer(job.value)
        stage, exc = job.failure
        batch: Batch | None = job.value
        detail = f"encoder stage {stage} failed: {exc}"
        results: list[Encoded | BaseException] = []
        for i, request in enumerate(job.items):
            stamps = batch.stamps(i) if batch is not None else dict(request.stamps)
            try:
                results.append(
                    self._finish(request, [], Reason.INTERNAL_ERROR, detail, stamps)
                )
            except TransientError as err:
                results.append(err)
        return results

    def _expire_waiting(self, batch: Batch, now: float) -> None:
        """Uploads that went stale while their batch waited for the engine
        (under load): answered ``timeout`` without being run."""
        for i, request in enumerate(batch.requests):
            usable = not batch.expired[i] and not isinstance(batch.images[i], BaseException)
            if usable and self._expired(request, now):
                batch.expired[i] = True
                batch.images[i] = TIMED_OUT

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

    def run_engine(self, *batches: Batch) -> None:
        """Stage 3: one engine call for every decodable image of the batches
        (several when the engine stage gathered the batches waiting for it);
        a failure of the engine itself is kept to answer each of their
        uploads with it."""
        usable = [
            (batch, i)
            for batch in batches
            for i, img in enumerate(batch.images)
            if not isinstance(img, BaseException)
        ]
        timings: dict[str, float] = {}
        if usable:
            try:
                found = self.engine.encode_images(
                    [batch.images[i] for batch, i in usable],  # type: ignore[misc]
                    timings=timings,
                )
                for (batch, i), faces in zip(usable, found, strict=True):
                    batch.faces[i] = faces
            except Exception as exc:  # the engine failing must not lose the batch
                log.exception("face engine failed on %d images", len(usable))
                for batch in batches:
                    batch.engine_error = exc
        embedded = self.clock()
        for batch in batches:
            batch.timings = dict(timings)
            batch.embedded = embedded

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
            log.info("upload %s: stale, not encoded", request.upload_id)
            return Reason.TIMEOUT, (
                "stale by its written-at stamp (FACEGATE_DEADLINE_S, FACEGATE_CLOCK_SKEW_S) "
                "when its batch was fetched or reached the engine"
            )
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
            metrics.backend_error("broker")
            raise _BrokerError(f"could not send the match of {request.upload_id}: {exc}") from exc
        metrics.observe_encoded(len(faces), error)
        return Encoded(request.upload_id, len(faces), error, match)


class _BrokerError(TransientError):
    """The broker refused the match task; the encode task retries."""


__all__ = ["Batch", "Encoded", "EncoderService", "enrol_reply"]
