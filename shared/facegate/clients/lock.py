"""The lock side: receive a door's signed events, verify, catch up.

::

    listener = DoorListener(redis_client, "front", key)   # key from `facegate doors key`
    for item in listener.listen(catch_up_from="0-0"):      # history, then live
        if item.event is not None and item.event.granted:
            open_the_door()
        elif item.rejected:
            log.warning("ignored: %s", item.rejected)

Events arrive live on the door's pub/sub channel; every event is also in the
door's stream, so a lock that was offline replays what it missed with
``catch_up_from=<last stream id it saw>`` (it subscribes first, then reads
the stream, so nothing falls between the two). Everything goes through
:func:`facegate.core.signing.verify_event` with one :class:`ReplayGuard`: an
event seen during catch-up and again live is reported once; a replay of an
already accepted event is rejected as ``replayed``; old events in the
history are rejected as ``expired`` (a lock never opens on a stale event).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from facegate.core import keys
from facegate.core.errors import RedisUnavailableError
from facegate.core.messages import DoorEvent
from facegate.core.signing import EventRejected, ReplayGuard, verify_event


@dataclass(frozen=True)
class Received:
    """One message as the lock saw it: a verified event, or a rejection."""

    wire: bytes
    received_at: float
    event: DoorEvent | None
    rejected: str | None = None
    detail: str = ""
    stream_id: str | None = None
    """Set for events read from the door's stream (catch-up)."""

    @property
    def upload_id(self) -> str | None:
        if self.event is not None:
            return self.event.upload_id
        try:
            doc: Any = json.loads(self.wire)
            value = doc["event"]["upload_id"]
            return value if isinstance(value, str) else None
        except (ValueError, KeyError, TypeError):
            return None


class DoorListener:
    """Verified events of one door."""

    def __init__(
        self,
        client: redis.Redis,
        door: str,
        key: bytes | str,
        *,
        guard: ReplayGuard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.door = keys.check_door(door)
        self.key = key
        self.guard = guard or ReplayGuard()
        self.clock = clock
        self._catch_up_ids: set[str] = set()

    def check(self, wire: bytes, stream_id: str | None = None) -> Received:
        """Verify one wire event."""
        now = self.clock()
        try:
            event = verify_event(wire, self.key, self.door, now=now, guard=self.guard)
        except EventRejected as exc:
            return Received(wire, now, None, exc.reason, exc.detail, stream_id)
        return Received(wire, now, event, stream_id=stream_id)

    def history(self, since: str = "0-0", count: int = 1000) -> list[Received]:
        """The door's stream after ``since`` (oldest first), verified."""
        try:
            entries = self.client.xrange(keys.door_stream(self.door), min=f"({since}", count=count)
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"reading {keys.door_stream(self.door)}: {exc}") from exc
        out = []
        for entry_id, fields in entries:  # type: ignore[union-attr]
            if not fields:
                continue
            wire = fields.get(b"event") or fields.get("event")
            if wire is None:
                continue
            sid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append(self.check(bytes(wire) if not isinstance(wire, str) else wire.encode(), sid))
        return out

    def listen(
        self,
        *,
        catch_up_from: str | None = None,
        timeout_s: float | None = None,
        poll_s: float = 0.2,
        on_subscribed: Callable[[], None] | None = None,
    ) -> Iterator[Received]:
        """Yield events: first the stream after ``catch_up_from`` (when
        given), then live ones until ``timeout_s`` passes without a message
        (``None``: forever). ``on_subscribed`` runs once the subscription is
        active (so a caller can upload knowing nothing will be missed)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(keys.door_channel(self.door))
            # wait for the subscription to be confirmed by the server
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                msg = pubsub.get_message(ignore_subscribe_messages=False, timeout=0.5)
                if msg is not None and msg.get("type") == "subscribe":
                    break
            if on_subscribed is not None:
                on_subscribed()
            if catch_up_from is not None:
                for item in self.history(catch_up_from):
                    if item.event is not None:
                        self._catch_up_ids.add(item.event.id)
                    yield item
            last = time.monotonic()
            while True:
                msg = pubsub.get_message(timeout=poll_s)
                if msg is None:
                    if timeout_s is not None and time.monotonic() - last > timeout_s:
                        return
                    continue
                last = time.monotonic()
                data = msg.get("data")
                if not isinstance(data, bytes | str):
                    continue
                wire = data.encode() if isinstance(data, str) else data
                item = self.check(wire)
                if item.rejected == "replayed" and self._seen_in_catch_up(wire):
                    continue  # the same event through both paths: reported once
                yield item
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"listening on door {self.door}: {exc}") from exc
        finally:
            pubsub.close()

    def _seen_in_catch_up(self, wire: bytes) -> bool:
        try:
            doc: Any = json.loads(wire)
            return str(doc["event"]["id"]) in self._catch_up_ids
        except (ValueError, KeyError, TypeError):
            return False


__all__ = ["DoorListener", "Received"]
