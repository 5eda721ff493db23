"""The lock side: a door's signed events, verified, with nothing missed or repeated.

::

    state = LockState.open("/var/lib/lock", "front")         # survives restarts
    listener = DoorListener(redis_client, "front", PUBLIC_KEY_HEX, state=state)
    listener.subscribe()            # returns once Redis confirmed the subscription
    for item in listener.events():  # catch-up from the stream, then live, forever
        if item.event is not None and item.event.granted:
            open_the_door()
        elif item.rejected:
            log.warning("ignored: %s", item.rejected)

How nothing is missed: every event is in the door's stream as well as on
its channel, and carries its stream id under the signature. Each time Redis
confirms the subscription (the first time, and after every reconnect) the
listener reads the stream after the last id it dealt with; those entries
are delivered first, then the live messages, of which copies of entries
already read are dropped: each event once, in stream order. A lock with no
resume point (first start, in-memory state) starts at the stream's end as
it was just before subscribing.

How nothing is repeated: every event goes through
:func:`facegate.core.event_verify.verify_event` with the door's
:class:`~facegate.clients.lock_state.LockState` as guard, which records the
accepted id (and the resume point) durably before the event is handed out.

When Redis goes away (restart, network): the listener backs off (0.1 s
doubling to 5 s, with jitter), subscribes again and catches up. A connection
that went silent is found by a PING every ``ping_interval_s`` without
traffic and dropped after three intervals without an answer. redis-py may
also reconnect by itself inside a read: its new subscription confirmation
triggers the same catch-up.

This module imports redis, cryptography (through the verification) and the
standard library only: ``pip install 'facegate[lock]'``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from facegate.clients.lock_state import LockState
from facegate.core import keys
from facegate.core.errors import RedisUnavailableError
from facegate.core.event_verify import DoorKeys, EventRejected, KeySpec, verify_event
from facegate.core.messages import DoorEvent

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
"""Stream entries read per ``XRANGE`` while catching up."""


@dataclass(frozen=True)
class Received:
    """One message as the lock saw it: a verified event, or a rejection."""

    wire: bytes
    received_at: float
    event: DoorEvent | None
    rejected: str | None = None
    detail: str = ""
    stream_id: str | None = None
    """The stream entry's id (catch-up), or the accepted live event's signed id."""
    source: str = "live"
    """``live`` (pub/sub) or ``stream`` (read from the door's stream)."""

    @property
    def upload_id(self) -> str | None:
        if self.event is not None:
            return self.event.upload_id
        try:
            doc: Any = json.loads(self.wire)
            value = doc["event"]["upload_id"]
            return value if isinstance(value, str) else None
        except (ValueError, KeyError, TypeError, RecursionError):
            return None


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: ``first_s`` doubling up to
    ``max_s``, each drawn between half and all of that (jitter, so that many
    locks do not reconnect in step)."""

    first_s: float = 0.1
    max_s: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.first_s
        while True:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, self.max_s)


class _Dead(redis.ConnectionError):
    """The subscription went silent (no answer to PING)."""


class DoorListener:
    """Verified events of one door, across reconnects and restarts."""

    def __init__(
        self,
        client: redis.Redis,
        door: str,
        key: DoorKeys | KeySpec | Iterable[KeySpec],
        *,
        state: LockState | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
        max_skew_s: float = 5.0,
        ping_interval_s: float = 5.0,
    ) -> None:
        self.client = client
        self.door = keys.check_door(door)
        self.keys = DoorKeys.of(key)
        self.state = state if state is not None else LockState(self.door)
        if self.state.door != self.door:
            raise ValueError(f"lock state of door {self.state.door} given to door {self.door}")
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff or Backoff()
        self.max_skew_s = max_skew_s
        self.ping_interval_s = ping_interval_s
        self.subscriptions = 0
        """How many times Redis confirmed the subscription (1 + reconnects)."""
        self._pubsub: Any = None
        self._cursor: str | None = None
        """The stream position dealt with so far: the next catch-up reads after it."""
        self._pending: collections.deque[tuple[Any, Any]] = collections.deque()
        self._caught_up: set[bytes] = set()
        self._stopping = threading.Event()

    # --- one message ----------------------------------------------------------------

    def check(self, wire: bytes, stream_id: str | None = None) -> Received:
        """Verify one wire event; ``stream_id``: the stream entry it was read from."""
        now = self.clock()
        source = "live" if stream_id is None else "stream"
        try:
            event = verify_event(
                wire, self.keys, self.door, now=now, guard=self.state,
                max_skew_s=self.max_skew_s, stream_id=stream_id,
            )
        except EventRejected as exc:
            return Received(wire, now, None, exc.reason, exc.detail, stream_id, source)
        return Received(wire, now, event, stream_id=event.stream_id, source=source)

    def history(self, since: str = "0-0", count: int = 1000) -> list[Received]:
        """Up to ``count`` entries of the door's stream after ``since``
        (oldest first), verified (the guard remembers what it accepts)."""
        try:
            entries = self.client.xrange(keys.door_stream(self.door), min=f"({since}", count=count)
        except redis.RedisError as exc:
            raise RedisUnavailableError(f"reading {keys.door_stream(self.door)}: {exc}") from exc
        found: Any = entries
        return [self._entry(sid, fields) for sid, fields in found]

    def _entry(self, entry_id: bytes | str, fields: dict[Any, Any] | None) -> Received:
        sid = _text(entry_id)
        wire = _wire(fields)
        if wire is None:
            return Received(b"", self.clock(), None, "malformed", "entry without event", sid,
                            "stream")
        return self.check(wire, sid)

    # --- subscribing -------------------------------------------------------------------

    def subscribe(
        self, *, catch_up_from: str | None = None, timeout_s: float | None = 10.0
    ) -> None:
        """Subscribe to the door's channel and return once Redis confirmed
        it and the stream was read after it: every event recorded before
        (after ``catch_up_from``, else after the state's resume point, else
        after the stream's end as it was just before subscribing) is then
        pending, every event recorded after comes live; :meth:`events`
        delivers both. Retries with backoff for ``timeout_s`` (``None``:
        until it succeeds), then raises ``RedisUnavailableError``."""
        self._cursor = catch_up_from or self.state.last_id
        self._connect(timeout_s)

    def _connect(self, timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delays = self.backoff.delays()
        while True:
            try:
                self._subscribe_once()
                return
            except redis.RedisError as exc:
                self._close_pubsub()
                delay = next(delays)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise RedisUnavailableError(
                        f"cannot subscribe to door {self.door}: {exc}"
                    ) from exc
                log.warning("door %s: subscribing failed (%s); retry in %.2f s",
                            self.door, exc, delay)
                self.sleep(delay)

    def _subscribe_once(self) -> None:
        if self._cursor is None:  # no resume point: the stream's end, read *before*
            top: Any = self.client.xrevrange(keys.door_stream(self.door), count=1)
            self._cursor = _text(top[0][0]) if top else "0-0"
        pubsub = self.client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        self._pubsub = pubsub
        pubsub.subscribe(keys.door_channel(self.door))
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=0.5)
            if msg is not None and msg.get("type") == "subscribe":
                self._read_stream()
                return
        raise redis.TimeoutError("no subscription confirmation within 5 s")

    def _read_stream(self) -> None:
        """Confirmed: read the stream after the cursor (what was recorded
        before the subscription; what comes after it arrives live too, and
        is then dropped as a copy)."""
        self.subscriptions += 1
        if self.subscriptions > 1:
            log.info("door %s: subscribed again; catching up after %s", self.door, self._cursor)
        stream = keys.door_stream(self.door)
        start = self._cursor
        assert start is not None
        pending: list[tuple[Any, Any]] = []
        while True:
            entries: Any = self.client.xrange(stream, min=f"({start}", count=CATCH_UP_PAGE)
            pending += entries
            if len(entries) < CATCH_UP_PAGE:
                break
            start = _text(entries[-1][0])
        self._pending = collections.deque(pending)
        self._caught_up = {
            _digest(wire) for _, fields in pending if (wire := _wire(fields)) is not None
        }

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):  # a dead socket
                pubsub.close()

    def stop(self) -> None:
        """Make :meth:`events` return at its next poll (from another thread;
        then :meth:`close` once it returned)."""
        self._stopping.set()

    def close(self) -> None:
        """Unsubscribe and write the resume point (not while :meth:`events`
        runs in another thread: :meth:`stop` it first)."""
        self._close_pubsub()
        self.state.flush()

    # --- events ---------------------------------------------------------------------------

    def _next_pending(self) -> Received:
        entry_id, fields = self._pending.popleft()
        item = self._entry(entry_id, fields)
        sid = _text(entry_id)
        self._cursor = sid
        if item.event is None:
            self.state.advance(sid)
        if not self._pending:
            self.state.flush()
        return item

    def events(self, *, timeout_s: float | None = None, poll_s: float = 0.2) -> Iterator[Received]:
        """Verified events (and rejections), in stream order: the catch-up,
        then live ones, reconnecting whenever Redis goes away, until
        ``timeout_s`` passes without a message (``None``: forever) or
        :meth:`stop`. Subscribes first when :meth:`subscribe` was not called."""
        if self._pubsub is None:
            self._connect(timeout_s)
        quiet_since = heard = time.monotonic()
        pinged = False
        while not self._stopping.is_set():
            try:
                if self._pending:
                    quiet_since = time.monotonic()
                    yield self._next_pending()
                    continue
                msg = self._pubsub.get_message(timeout=poll_s)
                now = time.monotonic()
                if msg is None:
                    if timeout_s is not None and now - quiet_since > timeout_s:
                        return
                    if now - heard > 3 * self.ping_interval_s:
                        raise _Dead(f"no answer from Redis for {now - heard:.1f} s")
                    if now - heard > self.ping_interval_s and not pinged:
                        self._pubsub.ping()
                        pinged = True
                    continue
                heard, pinged = now, False
                kind = msg.get("type")
                if kind == "subscribe":  # redis-py reconnected by itself
                    self._read_stream()
                    continue
                if kind != "message" or not isinstance(msg.get("data"), bytes | str):
                    continue
                data = msg["data"]
                wire = data.encode() if isinstance(data, str) else data
                quiet_since = now
                if _digest(wire) in self._caught_up:
                    continue  # already delivered by the catch-up
                item = self.check(wire)
                if item.stream_id is not None:
                    self._cursor = item.stream_id
                yield item
            except (redis.RedisError, OSError) as exc:
                log.warning("door %s: lost Redis (%s); reconnecting", self.door, exc)
                self._close_pubsub()
                self._pending.clear()  # read again after the cursor once back
                left = _left(timeout_s, quiet_since)
                if left is not None and left <= 0:
                    return
                try:
                    self._connect(left)
                except RedisUnavailableError:
                    return
                heard, pinged = time.monotonic(), False

    def listen(
        self,
        *,
        catch_up_from: str | None = None,
        timeout_s: float | None = None,
        poll_s: float = 0.2,
        on_subscribed: Callable[[], None] | None = None,
    ) -> Iterator[Received]:
        """:meth:`subscribe`, then ``on_subscribed()`` (anything published
        from then on is delivered), then :meth:`events`; closes at the end."""
        self.subscribe(catch_up_from=catch_up_from)
        try:
            if on_subscribed is not None:
                on_subscribed()
            yield from self.events(timeout_s=timeout_s, poll_s=poll_s)
        finally:
            self.close()


def _left(timeout_s: float | None, since: float) -> float | None:
    return None if timeout_s is None else timeout_s - (time.monotonic() - since)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _wire(fields: dict[Any, Any] | None) -> bytes | None:
    """The ``event`` field of a stream entry."""
    if not fields:
        return None
    wire = fields.get(b"event", fields.get("event"))
    if wire is None:
        return None
    return wire.encode() if isinstance(wire, str) else bytes(wire)


def _digest(wire: bytes) -> bytes:
    return hashlib.sha256(wire).digest()


__all__ = ["Backoff", "DoorListener", "Received"]
