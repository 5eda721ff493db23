"""Approaches in memory: the fake of :mod:`facegate.adapters.redis_approaches`.

Mixed into :class:`~facegate.adapters.memory_store.MemoryStore`, with the
same rules as the Redis scripts (checked by the same contract tests): a
frame's decision is recorded once and always audited; the first OPEN of an
open approach (no door event yet, before its window's end, within its
frames) goes to the door; otherwise the approach keeps its closest DENY
frame and waits in the due set until a closing DENY is recorded, once.
The audit entries of frames are marked in :attr:`frame_audit`
(``(upload_id, status)``), as the Redis audit stream's ``frame`` field.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from facegate.adapters.store import ApproachState, FrameStatus
from facegate.core import keys
from facegate.core.messages import Decision, DoorEvent


class MemoryApproaches:
    """The :class:`~facegate.adapters.store.ApproachStore` part of MemoryStore."""

    _cond: threading.Condition
    decision_ttl_s: int
    published: list[tuple[str, bytes]]
    subscribers: list[Callable[[str, bytes], None]]

    def _check(self) -> None: ...  # provided by MemoryStore

    def _get(self, name: str) -> Any: ...

    def _put(self, name: str, value: Any, ttl_s: float) -> None: ...

    def _append(self, stream: str, entry: bytes) -> None: ...

    @property
    def _approaches(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.__dict__.setdefault("_approach_records", {})
        return found

    @property
    def frame_audit(self) -> list[tuple[str, str]]:
        """``(upload_id, frame status)`` of every audited frame, in order."""
        found: list[tuple[str, str]] = self.__dict__.setdefault("_frame_audit", [])
        return found

    def _publish(self, event: DoorEvent, wire: bytes) -> list[Callable[[str, bytes], None]]:
        channel = keys.door_channel(event.door)
        self._append(keys.door_stream(event.door), wire)
        self.published.append((channel, wire))
        return list(self.subscribers)

    def record_frame(
        self, event_wire: bytes, event: DoorEvent, *, window_end: float, now: float, max_frames: int
    ) -> FrameStatus:
        if event.approach is None or event.camera is None:
            raise ValueError("record_frame needs an event with an approach and a camera")
        key = keys.approach_key(event.door, event.camera, event.approach)
        wire = bytes(event_wire)
        deliver: list[Callable[[str, bytes], None]] = []
        with self._cond:
            self._check()
            name = keys.decision_key(event.upload_id)
            if self._get(name) is not None:
                return FrameStatus.DUPLICATE
            self._put(name, wire, self.decision_ttl_s)
            rec = self._approaches.setdefault(
                key,
                {"door": event.door, "camera": event.camera, "approach": event.approach,
                 "frames": 0, "window_end": window_end, "outcome": None, "best": None},
            )
            rec["frames"] += 1
            rec["window_end"] = min(rec["window_end"], window_end)
            rec["last"] = event.upload_id
            if rec["outcome"] is not None:
                status = FrameStatus.CONCLUDED
            elif now >= rec["window_end"]:
                status = FrameStatus.LATE
            elif rec["frames"] > max_frames:
                status = FrameStatus.OVER
            elif event.decision is Decision.OPEN:
                status = FrameStatus.OPENED
            else:
                status = FrameStatus.RECORDED
            if status is FrameStatus.OPENED:
                rec["outcome"] = "OPEN"
                deliver = self._publish(event, wire)
            elif rec["outcome"] is None and event.decision is Decision.DENY:
                best = rec["best"]
                closer = event.distance is not None and (
                    best is None or best.distance is None or event.distance < best.distance
                )
                if best is None or closer or (event.distance is None and best.distance is None):
                    rec["best"] = event
            self._append(keys.AUDIT_STREAM, wire)
            self.frame_audit.append((event.upload_id, status.value))
        for fn in deliver:
            fn(keys.door_channel(event.door), wire)
        return status

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

    def record_approach_close(self, event_wire: bytes, event: DoorEvent, key: str) -> bool:
        wire = bytes(event_wire)
        with self._cond:
            self._check()
            rec = self._approaches.get(key)
            if rec is None or rec["outcome"] is not None:
                return False
            rec["outcome"] = "DENY"
            deliver = self._publish(event, wire)
            self._append(keys.AUDIT_STREAM, wire)
            self.frame_audit.append((event.upload_id, "close"))
        for fn in deliver:
            fn(keys.door_channel(event.door), wire)
        return True


__all__ = ["MemoryApproaches"]
