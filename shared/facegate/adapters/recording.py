"""How a door event is recorded: the one algorithm every store shares.

A lock reads a door's events live (pub/sub) and from the door's stream
(catch-up), and refuses a stream entry whose id is not the one signed inside
it (:func:`facegate.core.event_verify.verify_event`). So a door event gets
its stream id *before* it is signed and appended:

1. the first id tried is the event's ``issued_at`` in milliseconds (``-0``),
   so ids follow time and a lock resuming from a signed id after Redis lost
   its data still finds what comes after;
2. the event is signed with that id inside it;
3. the store's ``attempt`` runs atomically (one Lua script in Redis, one
   critical section in the fake) and ``XADD``\\ s the door stream at exactly
   that id, or, when the stream is already at or past it (another matcher
   was first), changes nothing and answers the stream's last id;
4. then the event is signed again just above that id (from the second
   conflict on with a random skip, so racing matchers spread out).

The stream copy, the published copy and the decision record are the same
bytes. Three kinds of record use it:

- :func:`record_signed`: one upload's decision (``record_decision``) and an
  approach's closing DENY (``record_approach_close``);
- :func:`record_frame_signed`: one frame of an approach (``record_frame``).
  Every frame gets its one decision record and audit entry; only the
  approach's first OPEN, while the approach is open, is a door event. The
  store decides that inside the same atomic attempt (:func:`frame_status`
  is the rule), so the frame comes with two wires: the door wire (signed
  with the candidate stream id), used only when the frame opens, and the
  *audit wire*: the same event signed without a stream id, which is what a
  frame that did not open is recorded as. A lock refuses an event without a
  stream id (``malformed``), so an audit-only frame, even an OPEN that came
  too late, can never open a door, wherever it is copied to.

``attempt`` answers ``(code, answer)``: :data:`RECORDED` with the stream id
(or, for a frame, its :class:`FrameStatus`), :data:`ALREADY` when the upload
(or approach) already has its record, :data:`TAKEN` with the stream's last
id when the id was taken.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from facegate.core.errors import RedisUnavailableError
from facegate.core.ids import stream_id_key
from facegate.core.messages import Decision, DoorEvent

Signer = Callable[[DoorEvent], bytes]
"""Signs an event for the wire: the matcher's door key (``DoorSigner.sign``)."""

Attempt = Callable[[DoorEvent, bytes], tuple[int, str]]
"""One atomic try of a store at recording ``(event with its stream id, wire)``."""

FrameAttempt = Callable[[DoorEvent, bytes, bytes], tuple[int, str]]
"""One atomic try at recording a frame: ``(event, door wire, audit wire)``."""

RECORDED: Final = 1
ALREADY: Final = 0
TAKEN: Final = 2

RECORD_ATTEMPTS: Final = 32
"""Tries at a free stream id before giving up (each try after the first
means another matcher took the id in the meantime)."""


class FrameStatus(StrEnum):
    """What recording one frame of an approach did."""

    DUPLICATE = "duplicate"
    """The upload already had its decision (a redelivery): nothing changed."""
    OPENED = "opened"
    """The frame passed, the first to: its OPEN went to the door."""
    RECORDED = "recorded"
    """Recorded in the audit log; the approach is still open."""
    CONCLUDED = "concluded"
    """Recorded; the approach already had its door event (a late frame)."""
    LATE = "late"
    """Recorded; decided after the approach's window ended (it cannot open)."""
    OVER = "over"
    """Recorded; beyond the frames per approach the door is calibrated for."""


@dataclass(frozen=True)
class Recorded:
    """A door event as it was recorded: the event (with its stream id) and its wire."""

    event: DoorEvent
    wire: bytes


@dataclass(frozen=True)
class FrameRecorded:
    """What recording a frame did, and what its decision record holds:
    the door event (with its stream id) when it ``OPENED``, else the frame's
    audit wire (signed, no stream id). For ``DUPLICATE`` nothing was written."""

    status: FrameStatus
    event: DoorEvent
    wire: bytes

    @property
    def published(self) -> bool:
        """The frame went to the door (stream and channel)."""
        return self.status is FrameStatus.OPENED

    @property
    def recorded(self) -> bool:
        return self.status is not FrameStatus.DUPLICATE


def stream_id_after(last: str, skip: int = 1) -> str:
    """The stream id ``skip`` places after ``last`` (ids need not be dense)."""
    ms, seq = stream_id_key(last)
    return f"{ms}-{seq + skip}" if seq + skip <= 2**64 - 1 else f"{ms + 1}-0"


def first_stream_id(event: DoorEvent) -> str:
    """The first id tried for ``event``: its issue time in milliseconds."""
    return f"{max(int(event.issued_at * 1000), 1)}-0"


def _place(event: DoorEvent, sign: Signer, attempt: Attempt) -> tuple[int, str, DoorEvent, bytes]:
    """Steps 1-4 above: ``(code, answer, event as tried last, its wire)``."""
    candidate = first_stream_id(event)
    for tries in range(RECORD_ATTEMPTS):
        stamped = replace(event, stream_id=candidate)
        wire = sign(stamped)
        code, answer = attempt(stamped, wire)
        if code != TAKEN:
            return code, answer, stamped, wire
        # the next id; when that too was taken, matchers are racing for the
        # same ids: spread them with a random skip
        skip = 1 if tries == 0 else random.randint(1, 2 ** min(tries + 2, 10))
        candidate = max(candidate, stream_id_after(answer, skip), key=stream_id_key)
    raise RedisUnavailableError(
        f"no free id in the stream of door {event.door} after {RECORD_ATTEMPTS} tries"
    )


def record_signed(event: DoorEvent, sign: Signer, attempt: Attempt) -> Recorded | None:
    """Record a door event once (an upload's decision, an approach's closing
    DENY); ``None`` when the store already had it (``ALREADY``)."""
    code, _, stamped, wire = _place(event, sign, attempt)
    return Recorded(stamped, wire) if code == RECORDED else None


def record_frame_signed(event: DoorEvent, sign: Signer, attempt: FrameAttempt) -> FrameRecorded:
    """Record one frame of an approach once; it is a door event only when
    the store's atomic attempt finds it the approach's first OPEN while the
    approach is open (then at the stream id it was signed with)."""
    audit = replace(event, stream_id=None)
    audit_wire = sign(audit)
    code, answer, stamped, wire = _place(
        event, sign, lambda ev, door_wire: attempt(ev, door_wire, audit_wire)
    )
    if code != RECORDED:
        return FrameRecorded(FrameStatus.DUPLICATE, audit, audit_wire)
    status = FrameStatus(answer)
    if status is FrameStatus.OPENED:
        return FrameRecorded(status, stamped, wire)
    return FrameRecorded(status, audit, audit_wire)


def frame_status(
    *,
    concluded: bool,
    frames: int,
    window_end: float,
    now: float,
    max_frames: int,
    decision: Decision,
) -> FrameStatus:
    """The rule both stores apply to a new frame (``RECORD_FRAME_LUA`` in
    Redis): ``frames`` counts this one, ``window_end`` is the earliest any
    frame proposed, ``concluded`` says the approach had its door event."""
    if concluded:
        return FrameStatus.CONCLUDED
    if now >= window_end:
        return FrameStatus.LATE
    if frames > max_frames:
        return FrameStatus.OVER
    return FrameStatus.OPENED if decision is Decision.OPEN else FrameStatus.RECORDED


__all__ = [
    "ALREADY",
    "RECORDED",
    "RECORD_ATTEMPTS",
    "TAKEN",
    "Attempt",
    "FrameAttempt",
    "FrameRecorded",
    "FrameStatus",
    "Recorded",
    "Signer",
    "first_stream_id",
    "frame_status",
    "record_frame_signed",
    "record_signed",
    "stream_id_after",
]
