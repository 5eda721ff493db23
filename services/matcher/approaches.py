"""The matcher's side of approaches: the closing DENY and the sweeper.

An approach (several frames of one passage at a door) whose window ends
without a frame that passed gets one DENY. :func:`closing_event` builds it
from what the store kept of the approach (the frame that came closest:
its reason, person and distance; ``timeout`` when every frame that passed
came too late or beyond the door's frames). :class:`Sweeper` runs
:meth:`MatcherService.close_due <services.matcher.service.MatcherService.close_due>`
every ``interval_s`` in a daemon thread of each matcher process, so an
approach is closed about on time even when no other frame arrives, and
whichever matcher is alive closes it when the one that saw its frames died
(the store's closing script publishes it once, however many try).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from facegate.adapters.store import ApproachState
from facegate.core.keys import new_upload_id
from facegate.core.messages import Decision, DoorEvent, Reason

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.25


def closing_reason(state: ApproachState) -> Reason:
    """The reason of the closest DENY frame, ``timeout`` without one."""
    if not state.reason:
        return Reason.TIMEOUT
    try:
        reason = Reason(state.reason)
    except ValueError:
        return Reason.INTERNAL_ERROR
    return Reason.TIMEOUT if reason is Reason.GRANTED else reason


def closing_event(state: ApproachState, now: float, event_ttl_s: float) -> DoorEvent:
    """The approach's DENY (it names the closest frame in ``upload_id``)."""
    return DoorEvent(
        id=new_upload_id(),
        upload_id=state.upload_id,
        door=state.door,
        camera=state.camera,
        decision=Decision.DENY,
        reason=closing_reason(state),
        person=state.person,
        distance=state.distance,
        issued_at=now,
        expires_at=now + event_ttl_s,
        stamps={"window_end": state.window_end, "published": now},
        approach=state.approach,
    )


class Sweeper:
    """Calls ``close_due`` every ``interval_s`` until stopped."""

    def __init__(self, close_due: Callable[[], int], interval_s: float = SWEEP_INTERVAL_S):
        self.close_due = close_due
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="approach-sweeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.close_due()
            except Exception:  # Redis away, a bug: try again at the next tick
                log.warning("closing due approaches failed", exc_info=True)


__all__ = ["SWEEP_INTERVAL_S", "Sweeper", "closing_event", "closing_reason"]
