"""The matcher: one upload's probe in, one signed door event out, exactly once.

For each :class:`~facegate.core.messages.MatchRequest` (kind ``access``):

1. if the upload already has a decision (a redelivered task), stop;
2. refresh the in-memory gallery and door policies when
   ``facegate:gallery:version`` changed (one GET per request otherwise);
3. read the probe encodings the encoder left in Redis;
4. :func:`facegate.core.policy.decide` -> verdict;
5. build the :class:`~facegate.core.messages.DoorEvent`, sign it with the door's
   key, and record + publish it with the one Lua script of
   :meth:`RedisStore.record_decision` (``SET NX`` gate: a second delivery,
   even racing on another worker, changes nothing).

Safe by default: any exception in steps 2-4 (corrupt data, a bug) becomes
``DENY internal_error``, which is still recorded and published, so the door
hears an answer. Transient errors (Redis unavailable) propagate so the Celery
task retries; when its retries are spent the task calls :meth:`deny`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.adapters.store import MatcherStore
from facegate.core.errors import TransientError
from facegate.core.keys import new_upload_id
from facegate.core.matching import Gallery
from facegate.core.messages import DoorEvent, MatchRequest, Reason, UploadKind
from facegate.core.policy import DoorPolicy, Verdict, decide
from facegate.core.signing import derive_door_key, sign_event
from services.matcher.settings import MatcherSettings

log = logging.getLogger(__name__)

DEFAULT_DIM = 128


@dataclass(frozen=True)
class Outcome:
    """What :meth:`MatcherService.handle` did: the event it built and
    whether it was recorded (``False``: the upload was already decided)."""

    event: DoorEvent | None
    recorded: bool


class MatcherService:
    """Decides uploads; one instance per worker process (thread-safe)."""

    def __init__(
        self,
        settings: MatcherSettings,
        store: MatcherStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._version = -1
        self._galleries: dict[str, Gallery] = {}
        self._doors: dict[str, DoorPolicy | None] = {}
        self._door_keys: dict[str, bytes] = {}

    # --- cached state -----------------------------------------------------------

    def _refresh(self) -> None:
        """Drop cached galleries and doors when the version moved."""
        version = self.store.gallery_version()
        with self._lock:
            if version != self._version:
                log.info("gallery version %s -> %s: reloading", self._version, version)
                self._galleries.clear()
                self._doors.clear()
                self._version = version

    def gallery(self, model_id: str, dim: int) -> Gallery:
        """Everyone enrolled with ``model_id`` (cached until the version moves)."""
        with self._lock:
            cached = self._galleries.get(model_id)
        if cached is not None:
            return cached
        version, mapping = self.store.templates_snapshot(model_id)
        gallery = Gallery.from_mapping(mapping) if mapping else Gallery.empty(dim)
        with self._lock:
            if version == self._version:
                self._galleries[model_id] = gallery
        log.info(
            "gallery for %s: %d people, %d templates",
            model_id,
            len(gallery),
            gallery.template_count,
        )
        return gallery

    def door(self, door: str) -> DoorPolicy | None:
        with self._lock:
            if door in self._doors:
                return self._doors[door]
        policy = self.store.get_door(
            door,
            default_threshold=self.settings.threshold,
            default_margin=self.settings.margin,
        )
        with self._lock:
            self._doors[door] = policy
        return policy

    def door_key(self, door: str) -> bytes:
        key = self._door_keys.get(door)
        if key is None:
            key = derive_door_key(self.settings.signing_secret.get_secret_value(), door)
            self._door_keys[door] = key
        return key

    # --- deciding --------------------------------------------------------------

    def _probe(self, request: MatchRequest) -> tuple[npt.NDArray[np.float32], str]:
        """The probe rows and their model; raises on anything inconsistent
        (which becomes internal_error)."""
        empty = np.zeros((0, DEFAULT_DIM), dtype=np.float32)
        if request.error is not None:
            return empty, request.model_id
        probe = self.store.get_probe(request.upload_id)
        if probe is None:
            if request.faces == 0:
                return empty, request.model_id
            raise LookupError(f"probe of {request.upload_id} is missing (expired?)")
        if request.model_id and probe.model_id != request.model_id:
            raise ValueError(
                f"probe model {probe.model_id!r} differs from request {request.model_id!r}"
            )
        if probe.faces != request.faces:
            raise ValueError(f"probe has {probe.faces} faces, request says {request.faces}")
        return probe.encodings, probe.model_id

    def _verdict(self, request: MatchRequest, now: float) -> Verdict:
        assert request.door is not None
        self._refresh()
        policy = self.door(request.door)
        probe, model_id = self._probe(request)
        if policy is None or probe.shape[0] != 1:
            # decided without comparing: no gallery needed
            gallery = Gallery.empty(int(probe.shape[1]))
        else:
            gallery = self.gallery(model_id, int(probe.shape[1]))
        return decide(
            policy,
            request,
            probe,
            gallery,
            now,
            deadline_s=self.settings.deadline_s,
            clock_skew_s=self.settings.clock_skew_s,
        )

    def handle(self, request: MatchRequest) -> Outcome:
        """Decide one upload and record its event (exactly once)."""
        if request.kind is not UploadKind.ACCESS or request.door is None:
            log.warning("matcher ignores %s upload %s", request.kind, request.upload_id)
            return Outcome(None, False)
        if self.store.get_decision(request.upload_id) is not None:
            log.info("upload %s already decided (redelivery): nothing to do", request.upload_id)
            return Outcome(None, False)
        started = self.clock()
        try:
            verdict = self._verdict(request, started)
        except TransientError:
            raise
        except Exception:
            log.exception("deciding upload %s failed: DENY internal_error", request.upload_id)
            verdict = Verdict.deny(Reason.INTERNAL_ERROR)
        stamps = dict(request.stamps)
        stamps["match_start"] = started
        return self._publish(request.upload_id, request.door, request.camera, verdict, stamps)

    def deny(self, request: MatchRequest, reason: Reason = Reason.INTERNAL_ERROR) -> Outcome:
        """Record a DENY for ``request`` without deciding (an undecodable
        message, retries spent); nothing when it names no door."""
        if request.door is None:
            log.warning("cannot deny upload %s: no door", request.upload_id)
            return Outcome(None, False)
        verdict = Verdict.deny(reason)
        return self._publish(
            request.upload_id, request.door, request.camera, verdict, dict(request.stamps)
        )

    def _publish(
        self,
        upload_id: str,
        door: str,
        camera: str | None,
        verdict: Verdict,
        stamps: dict[str, float],
    ) -> Outcome:
        now = self.clock()
        stamps["matched"] = now
        stamps["published"] = self.clock()
        event = DoorEvent(
            id=new_upload_id(),
            upload_id=upload_id,
            door=door,
            camera=camera,
            decision=verdict.decision,
            reason=verdict.reason,
            person=verdict.person,
            distance=None if verdict.distance is None else round(float(verdict.distance), 6),
            issued_at=now,
            expires_at=now + self.settings.event_ttl_s,
            stamps=stamps,
        )
        wire = sign_event(event, self.door_key(door))
        recorded = self.store.record_decision(wire, event)
        if recorded:
            since = stamps.get("uploaded")
            log.info(
                "door %s upload %s: %s %s person=%s distance=%s latency=%s",
                door,
                upload_id,
                event.decision,
                event.reason,
                event.person,
                event.distance,
                f"{now - since:.3f}s" if since is not None else "?",
            )
            self._forget_probe(upload_id)
        else:
            log.info("upload %s was decided meanwhile; this event is dropped", upload_id)
        return Outcome(event, recorded)

    def _forget_probe(self, upload_id: str) -> None:
        try:
            self.store.delete_probe(upload_id)
        except TransientError:
            log.warning("could not delete probe of %s (it expires anyway)", upload_id)


__all__ = ["MatcherService", "Outcome"]
