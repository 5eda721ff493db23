"""Approaches in memory: the fake of :mod:`facegate.adapters.redis_approaches`.

Mixed into :class:`~facegate.adapters.memory_store.MemoryStore`, with the
same rules as the Redis scripts (checked by the same contract tests) and
the same recording algorithm (:mod:`facegate.adapters.recording`): a
frame's decision is recorded once and always audited; the first OPEN of an
open approach (no door event yet, before its window's end, within its
frames; :func:`~facegate.adapters.recording.frame_status`) is a door event,
appended at the stream id it was signed with; any other frame is recorded
as its audit wire (signed, no stream id), and the approach keeps its
closest DENY frame and waits in the due set until a closing DENY is
recorded, once, as a door event. The audit entries of frames are marked in
:attr:`frame_audit` (``(upload_id, status)``), as the Redis audit stream's
``frame`` field.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from facegate.adapters.recording import (
    ALREADY,
    RECORDED,
    TAKEN,
    FrameRecorded,
    FrameStatus,
    Recorded,
    Signer,
    frame_status,
    record_frame_signed,
    record_signed,
)
from facegate.adapters.store import ApproachState
from facegate.core import keys
from facegate.core.messages import Decision, DoorEvent

Deliveries = list[Callable[[str, bytes], None]]


class MemoryApproaches:
    """The :class:`~facegate.adapters.store.ApproachStore` part of MemoryStore."""

    _cond: threading.Condition
    decision_ttl_s: int
    published: list[tuple[str, bytes]]
    subscribers: list[Callable[[str, bytes], None]]

    def _check(self) -> None: ...  # provided by MemoryStore

    def _get(self, name: str) -> Any: ...

    def _put(self, name: str, value: Any, ttl_s: float) -> None: ...

    def _append(self, stream: str, entry: bytes, stream_id: str | None = None) -> None: ...

    def _xadd_at(self, stream: str, stream_id: str, wire: bytes) -> str | None: ...

    @property
    def _approaches(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.__dict__.setdefault("_approach_records", {})
        return found

    @property
    def frame_audit(self) -> list[tuple[str, str]]:
        """``(upload_id, frame status)`` of every audited frame, in order."""
        found: list[tuple[str, str]] = self.__dict__.setdefault("_frame_audit", [])
        return found

    def _door_event(self, event: DoorEvent, wire: bytes) -> str | Deliveries:
        """Append a door event at its signed stream id and publish it: the
        subscribers to call (outside the lock), or the stream's last id
        when the id was taken (nothing changed). Under ``_cond``."""
        assert event.stream_id is not None
        taken = self._xadd_at(keys.door_stream(event.door), event.stream_id, wire)
        if taken is not None:
            return taken
        self.published.append((keys.door_channel(event.door), wire))
        return list(self.subscribers)

    def record_frame(
        self, event: DoorEvent, sign: Signer, *, window_end: float, now: float, max_frames: int
    ) -> FrameRecorded:
        if event.approach is None or event.camera is None:
            raise ValueError("record_frame needs an event with an approach and a camera")
        key = keys.approach_key(event.door, event.camera, event.approach)
        channel = keys.door_channel(event.door)

        def attempt(stamped: DoorEvent, door_wire: bytes, audit_wire: bytes) -> tuple[int, str]:
            deliver: Deliveries = []
            with self._cond:
                self._check()
                name = keys.decision_key(event.upload_id)
                if self._get(name) is not None:
                    return ALREADY, ""
                rec = self._approaches.get(key)
                frames = 1 + (rec["frames"] if rec else 0)
                wend = min(rec["window_end"], window_end) if rec else window_end
                status = frame_status(
                    concluded=rec is not None and rec["outcome"] is not None,
                    frames=frames,
                    window_end=wend,
                    now=now,
                    max_frames=max_frames,
                    decision=event.decision,
                )
                wire = bytes(audit_wire)
                if status is FrameStatus.OPENED:
                    wire = bytes(door_wire)
                    published = self._door_event(stamped, wire)
                    if isinstance(published, str):
                        return TAKEN, published
                    deliver = published
                if rec is None:
                    rec = self._approaches[key] = {
                        "door": event.door, "camera": event.camera, "approach": event.approach,
                        "outcome": None, "best": None,
                    }
                rec.update(frames=frames, window_end=wend, last=event.upload_id)
                if status is FrameStatus.OPENED:
                    rec["outcome"] = "OPEN"
                elif rec["outcome"] is None and event.decision is Decision.DENY:
                    best = rec["best"]
                    closer = event.distance is not None and (
                        best is None or best.distance is None or event.distance < best.distance
                    )
                    if best is None or closer or (event.distance is None and best.distance is None):
                        rec["best"] = event
                self._put(name, wire, self.decision_ttl_s)
                self._append(keys.AUDIT_STREAM, wire)
                self.frame_audit.append((event.upload_id, status.value))
            for fn in deliver:
                fn(channel, wire)
            return RECORDED, status.value

        return record_frame_signed(event, sign, attempt)

    def due_approaches(self, now: float, limit: int = 100) -> list[ApproachState]:
        with self._cond:
            self._check()
            due = sorted(
                (rec["window_end"], key)
                for key, rec in self._approaches.items()
                if rec["outcome"] is None and rec["window_end"] <= now
            )[:limit]
            out = []
            for _, key in due:
                rec = self._approaches[key]
                best: DoorEvent | None = rec["best"]
                out.append(
                    ApproachState(
                        key=key,
                        door=rec["door"],
                        camera=rec["camera"],
                        approach=rec["approach"],
                        window_end=rec["window_end"],
                        frames=rec["frames"],
                        upload_id=best.upload_id if best is not None else rec["last"],
                        reason=best.reason.value if best is not None else None,
                        person=best.person if best is not None else None,
                        distance=best.distance if best is not None else None,
                    )
                )
            return out

    def record_approach_close(self, event: DoorEvent, sign: Signer, key: str) -> Recorded | None:
        channel = keys.door_channel(event.door)

        def attempt(stamped: DoorEvent, wire: bytes) -> tuple[int, str]:
            assert stamped.stream_id is not None
            with self._cond:
                self._check()
                rec = self._approaches.get(key)
                if rec is None or rec["outcome"] is not None:
                    return ALREADY, ""
                published = self._door_event(stamped, bytes(wire))
                if isinstance(published, str):
                    return TAKEN, published
                rec["outcome"] = "DENY"
                self._append(keys.AUDIT_STREAM, bytes(wire))
                self.frame_audit.append((event.upload_id, "close"))
            for fn in published:
                fn(channel, bytes(wire))
            return RECORDED, stamped.stream_id

        return record_signed(event, sign, attempt)


__all__ = ["MemoryApproaches"]
