"""Door events -> MQTT: one thread per door, each a lock's listener.

Each door is read by :class:`facegate.clients.lock.DoorListener`, the lock's
own client: the same signature check with the door's public key(s), the same
reconnect with backoff and catch-up from the stream. A verified event
becomes the messages of :func:`services.mqtt.topics.messages_for`, published
with QoS 1 one after the other; only when the broker acknowledged the last
of them is the event's stream id written as the door's cursor
(:class:`services.mqtt.state.Cursors`). While the broker is away the door's
thread waits on the acknowledgement, and the events behind it stay in Redis
(the pub/sub buffer, and the stream the listener catches up from); after a
bridge restart the listener starts after the cursor. So each event reaches
the broker once, except the one in flight when the bridge is killed
between the broker's acknowledgement and the cursor write (published again
after the restart: at least once, never lost).

Where the bridge differs from a lock, and why:

* Replay: a lock's guard remembers event ids on disk; the bridge's durable
  guard is the cursor: an event is published only when its *signed* stream
  id is after the door's cursor (stream ids only grow), and a process-local
  :class:`~facegate.clients.lock_state.LockState` catches a repeat within
  the process. A lock's disk guard would record an event when it is read,
  before the broker has it, and refuse it after a crash: lost, not once.
* Freshness: an event that expired before the bridge read it (published
  while the bridge or the broker was down) is still the matcher's own,
  signed record; it is published with ``"late": true`` (a lock would ignore
  it: it must not open late). An event dated in the future is refused as a
  lock refuses it.
* Everything a lock refuses otherwise (forged, tampered, unknown key,
  malformed, replayed) is never published: counted per reason in
  :attr:`Bridge.rejected` (``/healthz``) and logged.

A door's first cursor is the end of its stream when the bridge first sees
the door (written at once, so events recorded while the bridge is down
after that are caught up).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from typing import Any

import redis

from facegate.clients.lock import Backoff, DoorListener, Received
from facegate.clients.lock_state import LockState
from facegate.core import keys
from facegate.core.errors import ConfigError, RedisUnavailableError
from facegate.core.event_verify import DoorKeys, EventRejected, verify_event
from facegate.core.ids import stream_id_key
from services.mqtt.publisher import Publisher
from services.mqtt.settings import MqttSettings
from services.mqtt.state import Cursors, read_keys_dir
from services.mqtt.topics import Topics, discovery_messages, messages_for

log = logging.getLogger(__name__)

LATE = "late"


class BridgeListener(DoorListener):
    """A lock's listener that lets through, marked late, authentic events
    that expired before they were read (see the module docstring)."""

    def check(self, wire: bytes, stream_id: str | None = None) -> Received:
        item = super().check(wire, stream_id)
        if item.rejected != "expired":
            return item
        claimed = _claimed_expiry(wire)
        if claimed is None or claimed >= item.received_at:  # dated in the future: refused
            return item
        try:
            event = verify_event(
                wire, self.keys, self.door, now=claimed, guard=self.state,
                max_skew_s=self.max_skew_s, stream_id=stream_id,
            )
        except EventRejected:
            return item
        return Received(wire, item.received_at, event, None, LATE, event.stream_id, item.source)


def _claimed_expiry(wire: bytes) -> float | None:
    """The ``expires_at`` the wire claims (checked by the signature afterwards)."""
    try:
        value = json.loads(wire)["event"]["expires_at"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class DoorBridge:
    """One door's thread: listen, verify, publish, then move the cursor."""

    def __init__(self, bridge: Bridge, door: str, door_keys: DoorKeys) -> None:
        self.bridge = bridge
        self.door = keys.check_door(door)
        self.listener = BridgeListener(
            bridge.redis, door, door_keys, state=LockState(door), backoff=Backoff(0.1, 5.0)
        )
        self.stop_event = threading.Event()
        self.subscribed = False
        self.published = 0
        self.cursor: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"door-{door}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.listener.stop()

    def _start_point(self) -> str:
        cursors = self.bridge.cursors
        cursor = cursors.get(self.door)
        if cursor is None:
            top: Any = self.bridge.redis.xrevrange(keys.door_stream(self.door), count=1)
            cursor = _text(top[0][0]) if top else "0-0"
            cursors.save(self.door, cursor)
            log.info("door %s: new to the bridge; publishing events after %s", self.door, cursor)
        return cursor

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.cursor = self._start_point()
                self.listener.subscribe(catch_up_from=self.cursor, timeout_s=10.0)
                break
            except (RedisUnavailableError, redis.RedisError) as exc:
                log.warning("door %s: cannot read Redis yet (%s)", self.door, exc)
                self.stop_event.wait(1.0)
            except ConfigError as exc:  # an unreadable cursor: not bridged (/healthz says so)
                log.error("door %s: not bridged: %s", self.door, exc)
                return
        else:
            return
        self.subscribed = True
        try:
            self._bridge()
        except Exception:  # a dead door must show on /healthz, not vanish
            log.exception("door %s: stopped by an unexpected error", self.door)
        finally:
            self.subscribed = False
            self.listener.close()

    def _bridge(self) -> None:
        bridge = self.bridge
        for message in discovery_messages(bridge.topics, self.door, bridge.version):
            if bridge.discovery and not bridge.publisher.publish(message, self.stop_event):
                return
        for item in self.listener.events():
            if not self._handle(item):
                return

    def _handle(self, item: Received) -> bool:
        """Publish one verified event; ``False`` when stopped midway."""
        event = item.event
        if event is None or event.stream_id is None:
            self.bridge.count_rejected(self.door, item.rejected or "malformed", item.detail)
            return True
        if self.cursor is not None and stream_id_key(event.stream_id) <= stream_id_key(
            self.cursor
        ):
            self.bridge.count_rejected(self.door, "replayed", f"stream id {event.stream_id} "
                                       f"is not after the published {self.cursor}")
            return True
        for message in messages_for(self.bridge.topics, event, late=item.detail == LATE):
            if not self.bridge.publisher.publish(message, self.stop_event):
                return False
        while True:  # published: the cursor must follow before the next event
            try:
                self.bridge.cursors.save(self.door, event.stream_id)
                break
            except OSError as exc:
                log.error("door %s: cursor not written (%s); retrying", self.door, exc)
                if self.stop_event.wait(1.0):
                    return False
        self.cursor = event.stream_id
        self.published += 1
        log.info("door %s: published %s %s (%s)", self.door, event.decision.value,
                 event.reason.value, event.stream_id)
        return True


class Bridge:
    """Every door with a key file, each on its own thread; the folder is
    read again every ``rescan_s`` (new doors, rotated keys, removed doors)."""

    def __init__(
        self,
        redis_client: redis.Redis,
        publisher: Publisher,
        cursors: Cursors,
        settings: MqttSettings,
        *,
        version: str = "0",
    ) -> None:
        self.redis = redis_client
        self.publisher = publisher
        self.cursors = cursors
        self.topics: Topics = publisher.topics
        self.keys_dir = settings.mqtt_keys_dir
        self.rescan_s = settings.mqtt_rescan_s
        self.discovery = settings.mqtt_discovery
        self.version = version
        self.doors: dict[str, DoorBridge] = {}
        self.rejected: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def count_rejected(self, door: str, reason: str, detail: str) -> None:
        with self._lock:
            self.rejected[reason] += 1
        log.warning("door %s: event not published: %s %s", door, reason, detail)

    def sync_doors(self) -> None:
        found = read_keys_dir(self.keys_dir)
        for door, door_keys in found.items():
            running = self.doors.get(door)
            if running is None:
                log.info("door %s: bridging (keys %s)", door, ", ".join(door_keys))
                self.doors[door] = DoorBridge(self, door, door_keys)
                self.doors[door].start()
            elif set(running.listener.keys) != set(door_keys):
                log.info("door %s: keys now %s", door, ", ".join(door_keys))
                running.listener.keys = door_keys
        for door in [d for d in self.doors if d not in found]:
            log.info("door %s: key file gone; no longer bridged", door)
            self.doors.pop(door).stop()

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: connect, bridge the doors, read the keys folder again."""
        self.publisher.start()
        try:
            while not stop.is_set():
                self.sync_doors()
                stop.wait(self.rescan_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        for door in self.doors.values():
            door.stop()
        for door in self.doors.values():
            door.thread.join(timeout=5.0)
        self.publisher.close()
        self.cursors.close()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, details)``: healthy when the broker is connected and
        every door is subscribed."""
        doors = {
            name: {"subscribed": d.subscribed, "published": d.published, "cursor": d.cursor}
            for name, d in sorted(self.doors.items())
        }
        connected = self.publisher.connected.is_set()
        with self._lock:
            rejected = dict(self.rejected)
        doc = {"mqtt_connected": connected, "mqtt_connects": self.publisher.connects,
               "mqtt_refused": self.publisher.refused,
               "doors": doors, "rejected": rejected}
        return connected and all(d.subscribed for d in self.doors.values()), doc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["Bridge", "BridgeListener", "DoorBridge"]
