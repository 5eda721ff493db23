"""The matcher: one upload's probe in, one signed door event out, exactly once.

For each :class:`~facegate.core.messages.MatchRequest` (kind ``access``):

1. if the upload already has a decision (a redelivered task), stop;
2. refresh the in-memory gallery and door policies when
   ``facegate:gallery:version`` changed (one GET per request otherwise);
3. read the probe encodings the encoder left in Redis;
4. :func:`facegate.core.policy.decide` -> verdict;
5. build the :class:`~facegate.core.messages.DoorEvent`, sign it with the
   door's Ed25519 key (derived from ``FACEGATE_SIGNING_SECRET`` and the
   door's key version, :mod:`facegate.core.signing`) together with its
   stream id, and record + publish it with the one Lua script of
   :meth:`RedisStore.record_decision` (exactly-once gate: a second delivery,
   even racing on another worker, changes nothing).

A frame of an *approach* (``request.approach``: several snapshots of one
passage) is recorded exactly once and always in the audit stream, but
reaches the door only as the approach's first OPEN, while the approach is
open (``store.record_frame``): the door hears at most one OPEN per
approach, signed with its stream id like any door event; a frame that does
not open is recorded signed without a stream id, which no lock accepts. An
approach whose window (``FACEGATE_APPROACH_WINDOW_S`` from its first
frame's upload) ends without a pass gets one DENY, a door event too, from
:meth:`MatcherService.close_due`, which every matcher runs after each frame
and on a timer (:class:`services.matcher.approaches.Sweeper`), so a dead
matcher's approaches are closed by the others. How the store gives each
door event its stream id and signature: :mod:`facegate.adapters.recording`.

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

from facegate.adapters import metrics
from facegate.adapters.store import ApproachState, FrameStatus, MatcherStore
from facegate.core.errors import TransientError
from facegate.core.keys import new_upload_id
from facegate.core.matching import Gallery
from facegate.core.messages import DoorEvent, MatchRequest, Reason, UploadKind
from facegate.core.policy import (
    DoorPolicy,
    Verdict,
    allowed_template_counts,
    approach_start,
    decide,
    door_threshold,
)
from facegate.core.signing import DoorSigner
from services.matcher.approaches import closing_event
from services.matcher.settings import MatcherSettings

log = logging.getLogger(__name__)

DEFAULT_DIM = 128


@dataclass(frozen=True)
class Outcome:
    """What :meth:`MatcherService.handle` did: the event it built and
    whether it was recorded (``False``: the upload was already decided)."""

    event: DoorEvent | None
    recorded: bool
    frame: FrameStatus | None = None
    """For a frame of an approach: what recording it did."""


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
        self._key_versions: dict[str, int] = {}
        self._signers: dict[tuple[str, int], DoorSigner] = {}
        self._thresholds: dict[tuple[str, str], float] = {}

    # --- cached state -----------------------------------------------------------

    def _refresh(self) -> None:
        """Drop cached galleries and doors when the version moved."""
        version = self.store.gallery_version()
        with self._lock:
            if version != self._version:
                log.info("gallery version %s -> %s: reloading", self._version, version)
                self._galleries.clear()
                self._doors.clear()
                self._key_versions.clear()
                self._thresholds.clear()
                self._version = version

    def gallery(self, model_id: str, dim: int) -> Gallery:
        """Everyone enrolled with ``model_id`` (cached until the version moves)."""
        with self._lock:
            cached = self._galleries.get(model_id)
        if cached is not None:
            return cached
        began = time.perf_counter()
        version, mapping = self.store.templates_snapshot(model_id)
        gallery = Gallery.from_mapping(mapping) if mapping else Gallery.empty(dim)
        with self._lock:
            if version == self._version:
                self._galleries[model_id] = gallery
        n, templates = len(gallery), gallery.template_count
        metrics.observe_gallery(n, templates, time.perf_counter() - began)
        log.info("gallery for %s: %d people, %d templates", model_id, n, templates)
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

    def threshold(self, policy: DoorPolicy, gallery: Gallery, model_id: str) -> float:
        """The door's threshold with this gallery (calibrated ones are
        recomputed once per gallery version: enrol, revoke, door change)."""
        key = (policy.door, model_id)
        with self._lock:
            cached = self._thresholds.get(key)
        if cached is not None:
            return cached
        value = door_threshold(policy, gallery, default_threshold=self.settings.threshold)
        if policy.calibrated:
            counts = allowed_template_counts(policy, gallery)
            log.info(
                "door %s: threshold %.4f calibrated for %d people (%d templates), "
                "%d frame(s) per approach, %g strangers per approach",
                policy.door,
                value,
                len(counts),
                sum(counts),
                policy.frames,
                policy.stranger_rate,
            )
        with self._lock:
            self._thresholds[key] = value
        return value

    def signer(self, door: str) -> DoorSigner:
        """The door's current private key (its version is cached like the
        policy: until the gallery version moves, which a rotation does)."""
        with self._lock:
            version = self._key_versions.get(door)
        if version is None:
            version = self.store.door_key_version(door)
            with self._lock:
                self._key_versions[door] = version
        with self._lock:
            signer = self._signers.get((door, version))
        if signer is None:
            signer = DoorSigner.derive(
                self.settings.signing_secret.get_secret_value(), door, version
            )
            with self._lock:
                self._signers[(door, version)] = signer
        return signer

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
        threshold = None
        if policy is None or probe.shape[0] != 1:
            # decided without comparing: no gallery needed
            gallery = Gallery.empty(int(probe.shape[1]))
        else:
            gallery = self.gallery(model_id, int(probe.shape[1]))
            threshold = self.threshold(policy, gallery, model_id)
        return decide(
            policy,
            request,
            probe,
            gallery,
            now,
            deadline_s=self.settings.deadline_s,
            threshold=threshold,
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
        return self._publish(request, verdict, stamps)

    def deny(self, request: MatchRequest, reason: Reason = Reason.INTERNAL_ERROR) -> Outcome:
        """Record a DENY for ``request`` without deciding (an undecodable
        message, retries spent); nothing when it names no door."""
        if request.door is None:
            log.warning("cannot deny upload %s: no door", request.upload_id)
            return Outcome(None, False)
        return self._publish(request, Verdict.deny(reason), dict(request.stamps))

    def _event(
        self,
        upload_id: str,
        door: str,
        camera: str | None,
        verdict: Verdict,
        stamps: dict[str, float],
        approach: str | None = None,
    ) -> tuple[DoorEvent, float]:
        """The event of a verdict, to be signed as it is recorded: ``(event, now)``."""
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
            approach=approach,
        )
        return event, now

    def _publish(
        self, request: MatchRequest, verdict: Verdict, stamps: dict[str, float]
    ) -> Outcome:
        upload_id, door = request.upload_id, request.door
        assert door is not None
        if request.approach is not None and request.camera is not None:
            return self._frame(request, verdict, stamps)
        event, now = self._event(upload_id, door, request.camera, verdict, stamps)
        recorded = self.store.record_decision(event, self.signer(door).sign)
        if recorded is not None:
            event = recorded.event
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
        return Outcome(event, recorded is not None)

    # --- approaches ------------------------------------------------------------

    def _frames_of(self, door: str) -> int:
        """Frames per approach the door is calibrated for (1 when unknown)."""
        try:
            policy = self.door(door)
        except Exception:  # a broken policy decides nothing here: be strict
            return 1
        return policy.frames if policy is not None else 1

    def _frame(self, request: MatchRequest, verdict: Verdict, stamps: dict[str, float]) -> Outcome:
        assert request.door is not None and request.approach is not None
        event, now = self._event(
            request.upload_id, request.door, request.camera, verdict, stamps, request.approach
        )
        frame = self.store.record_frame(
            event,
            self.signer(request.door).sign,
            window_end=approach_start(request.stamps, now) + self.settings.approach_window_s,
            now=now,
            max_frames=self._frames_of(request.door),
        )
        status = frame.status
        if status is FrameStatus.DUPLICATE:
            log.info("upload %s was decided meanwhile; this event is dropped", request.upload_id)
            return Outcome(event, False, status)
        log.info(
            "door %s approach %s upload %s: %s %s (frame %s)",
            request.door,
            request.approach,
            request.upload_id,
            event.decision,
            event.reason,
            status,
        )
        self._forget_probe(request.upload_id)
        try:
            self.close_due()
        except Exception:  # the sweeper closes it later
            log.warning("closing due approaches failed; the sweeper retries", exc_info=True)
        return Outcome(frame.event, True, status)

    def close_due(self) -> int:
        """Record the one DENY of every approach whose window ended without
        a pass, as a door event; how many this call closed."""
        now = self.clock()
        due = self.store.due_approaches(now)
        if due:  # a rotated key moves the gallery version: sign with the current one
            self._refresh()
        closed = 0
        for state in due:
            closed += self._close(state, now)
        return closed

    def _close(self, state: ApproachState, now: float) -> int:
        event = closing_event(state, now, self.settings.event_ttl_s)
        recorded = self.store.record_approach_close(
            event, self.signer(state.door).sign, state.key
        )
        if recorded is None:
            return 0
        metrics.observe_close(recorded.event)
        log.info(
            "door %s approach %s: window closed after %d frame(s) without a pass: DENY %s",
            state.door,
            state.approach,
            state.frames,
            event.reason,
        )
        return 1

    def _forget_probe(self, upload_id: str) -> None:
        try:
            self.store.delete_probe(upload_id)
        except TransientError:
            log.warning("could not delete probe of %s (it expires anyway)", upload_id)


__all__ = ["MatcherService", "Outcome"]
