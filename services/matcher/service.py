"""The matcher: one upload's probe in, one signed door event out, exactly once.

For each :class:`~facegate.core.messages.MatchRequest` (kind ``access``):

1. if the upload already has a decision (a redelivered task), stop;
2. catch up with enrolments, revocations and door changes from the change
   stream (one GET when nothing changed; changed people and doors only
   otherwise; :mod:`services.matcher.gallery_state`);
3. read the probe encodings the encoder left in Redis;
4. :func:`facegate.core.policy.decide` -> verdict (``FACEGATE_TIMEZONE``: schedules' zone);
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
``DENY internal_error``, still recorded and published: the door hears an answer.
Transient errors (Redis unavailable) propagate so the Celery task retries;
when its retries are spent the task calls :meth:`deny`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.adapters import metrics
from facegate.adapters.store import ApproachState, FrameStatus, MatcherStore
from facegate.core.errors import TransientError
from facegate.core.keys import new_upload_id
from facegate.core.live_gallery import LiveGallery
from facegate.core.matching import Gallery
from facegate.core.messages import DoorEvent, MatchRequest, Reason, UploadKind
from facegate.core.policy import (
    AnyGallery,
    DoorPolicy,
    GroupsOf,
    Verdict,
    approach_start,
    decide,
)
from facegate.core.signing import DoorSigner
from services.matcher.approaches import closing_event
from services.matcher.gallery_state import GalleryState
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
        self.state = GalleryState(settings, store)
        """Galleries, doors and keys, kept current from the change stream."""
        self._groups_of: GroupsOf = store.groups_of

    # --- cached state (services.matcher.gallery_state) ----------------------------

    def _refresh(self) -> None:
        self.state.refresh()

    def gallery(self, model_id: str, dim: int) -> LiveGallery:
        return self.state.gallery(model_id, dim)

    def door(self, door: str) -> DoorPolicy | None:
        return self.state.door(door)

    def threshold(self, policy: DoorPolicy, gallery: LiveGallery, model_id: str) -> float:
        return self.state.threshold(policy, gallery, model_id)

    def signer(self, door: str) -> DoorSigner:
        return self.state.signer(door)

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
        gallery: AnyGallery
        if policy is None or probe.shape[0] != 1:
            # decided without comparing: no gallery needed
            gallery = Gallery.empty(int(probe.shape[1]))
        else:
            live = self.gallery(model_id, int(probe.shape[1]))
            threshold = self.threshold(policy, live, model_id)
            gallery = live
        return decide(
            policy,
            request,
            probe,
            gallery,
            now,
            deadline_s=self.settings.deadline_s,
            threshold=threshold,
            clock_skew_s=self.settings.clock_skew_s,
            tz=self.settings.zone,
            groups_of=self._groups_of,
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
        """Record a DENY without deciding (undecodable, retries spent); nothing without a door."""
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
        stamps["matched"] = now = self.clock()
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
