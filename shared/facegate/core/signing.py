"""Signed door events: what the matcher signs and what a lock checks.

Each door has its own key, derived from the deployment's signing secret::

    door_key = HMAC-SHA256(FACEGATE_SIGNING_SECRET, "door:" + door)

so a lock holds only its own door's key (``facegate doors key DOOR`` prints
it as hex) and an event for another door never verifies. The wire format is
one JSON object::

    {"event": {...DoorEvent fields...}, "sig": "<64 hex>"}

where ``sig = hex(HMAC-SHA256(door_key, canonical JSON of event))`` and the
canonical JSON has sorted keys and no spaces.

A lock integrator needs only :func:`verify_event` and a
:class:`ReplayGuard`::

    from facegate.core.signing import EventRejected, ReplayGuard, verify_event

    guard = ReplayGuard()
    key = bytes.fromhex(KEY_HEX)            # from `facegate doors key front`

    def on_message(wire: bytes) -> None:
        try:
            event = verify_event(wire, key, "front", guard=guard)
        except EventRejected as exc:
            log.warning("ignored door event: %s", exc.reason)
            return                          # stay locked
        if event.granted:
            open_the_door(seconds=3)

``verify_event`` raises :class:`EventRejected` whose ``reason`` is one of
``malformed`` (not the wire format, or fields that do not validate),
``forged`` (no signature of the right form, or an event for another door),
``tampered`` (the signature does not match the content), ``expired`` (now is
past ``expires_at``, or the event claims to be issued in the future beyond
the allowed clock skew) and ``replayed`` (the guard has seen this event id).
Signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import re
import time
from typing import Any, Final

from facegate.core.errors import BadMessageError, FacegateError
from facegate.core.messages import DoorEvent

REJECT_REASONS: Final = ("malformed", "forged", "tampered", "expired", "replayed")
MAX_WIRE_BYTES: Final = 16 * 1024
_SIG_RE = re.compile(r"[0-9a-f]{64}\Z")


class EventRejected(FacegateError):  # noqa: N818 - the name DESIGN.md gives
    """A door event a lock must ignore; ``reason`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def _secret_bytes(secret: str | bytes) -> bytes:
    data = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not data:
        raise ValueError("the signing secret is empty")
    return data


def derive_door_key(secret: str | bytes, door: str) -> bytes:
    """The 32-byte key of one door: ``HMAC-SHA256(secret, "door:" + door)``."""
    return hmac.new(_secret_bytes(secret), b"door:" + door.encode(), hashlib.sha256).digest()


def _key_bytes(key: bytes | str) -> bytes:
    """A door key as bytes; a ``str`` is read as hex (what the CLI prints)."""
    if isinstance(key, str):
        try:
            key = bytes.fromhex(key)
        except ValueError as exc:
            raise ValueError("a door key given as text must be hex") from exc
    if len(key) < 16:
        raise ValueError("a door key must be at least 16 bytes")
    return key


def canonical_json(obj: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: the bytes that are signed."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _mac(key: bytes, event: dict[str, Any]) -> str:
    return hmac.new(key, canonical_json(event), hashlib.sha256).hexdigest()


def sign_event(event: DoorEvent, key: bytes | str) -> bytes:
    """The wire form of ``event`` signed with its door's key."""
    body = event.to_dict()
    return canonical_json({"event": body, "sig": _mac(_key_bytes(key), body)})


class ReplayGuard:
    """Remembers the ids of accepted events until they expire.

    Memory is bounded: an id is forgotten once its event has expired (an
    expired event is refused anyway), and at most ``max_entries`` live ids
    are kept. When that many unexpired events arrive within one event
    lifetime (a flood), new events are refused as ``replayed``: the guard
    fails closed rather than forget an id that could still be replayed.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._expiry

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires_at, event_id = heapq.heappop(self._heap)
            if self._expiry.get(event_id) == expires_at:
                del self._expiry[event_id]

    def check_and_remember(self, event_id: str, expires_at: float, now: float) -> None:
        """Raise ``EventRejected("replayed")`` when ``event_id`` was seen
        (or the guard is full); otherwise remember it until ``expires_at``."""
        self._purge(now)
        if event_id in self._expiry:
            raise EventRejected("replayed", f"event {event_id} was already accepted")
        if len(self._expiry) >= self.max_entries:
            raise EventRejected("replayed", "replay guard is full; refusing new events")
        self._expiry[event_id] = expires_at
        heapq.heappush(self._heap, (expires_at, event_id))


def verify_event(
    wire: bytes | str,
    key: bytes | str,
    door: str,
    *,
    now: float | None = None,
    guard: ReplayGuard | None = None,
    max_skew_s: float = 5.0,
) -> DoorEvent:
    """Check a wire event for ``door`` and return it, or raise ``EventRejected``.

    ``key`` is the door's key (bytes, or hex text); ``now`` defaults to
    ``time.time()``; ``guard`` (recommended) refuses an event id seen before.
    The checks run in this order: form, door, signature, fields, time,
    replay; the guard remembers an id only when everything else passed.
    """
    door_key = _key_bytes(key)
    if len(wire) > MAX_WIRE_BYTES:
        raise EventRejected("malformed", f"larger than {MAX_WIRE_BYTES} bytes")
    try:
        outer = json.loads(wire)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventRejected("malformed", "not JSON") from exc
    if not isinstance(outer, dict) or set(outer) != {"event", "sig"}:
        raise EventRejected("malformed", 'want an object with exactly "event" and "sig"')
    body, sig = outer["event"], outer["sig"]
    if not isinstance(body, dict):
        raise EventRejected("malformed", '"event" is not an object')
    if not isinstance(sig, str) or not _SIG_RE.match(sig):
        raise EventRejected("forged", "no signature of the right form (64 hex)")
    if body.get("door") != door:
        raise EventRejected("forged", f"event is for door {body.get('door')!r}, not {door!r}")
    try:
        expected = _mac(door_key, body)
    except ValueError as exc:  # NaN or infinity in the body: never signed by us
        raise EventRejected("malformed", "event does not serialise canonically") from exc
    if not hmac.compare_digest(expected, sig):
        raise EventRejected("tampered", "signature does not match the content")
    try:
        event = DoorEvent.from_dict(body)
    except BadMessageError as exc:
        raise EventRejected("malformed", str(exc)) from exc
    when = time.time() if now is None else now
    if when > event.expires_at:
        raise EventRejected("expired", f"expired {when - event.expires_at:.3f} s ago")
    if event.issued_at > when + max_skew_s:
        raise EventRejected("expired", "issued in the future (clock skew?)")
    if guard is not None:
        guard.check_and_remember(event.id, event.expires_at, when)
    return event


__all__ = [
    "REJECT_REASONS",
    "EventRejected",
    "ReplayGuard",
    "canonical_json",
    "derive_door_key",
    "sign_event",
    "verify_event",
]
