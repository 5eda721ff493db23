"""The lock side of door events: check one signed event, refuse anything doubtful.

This module is all a lock needs to trust an event (it imports the standard
library, ``cryptography`` and the event's own dataclass, nothing else). The
matcher's half, which holds the private keys, is :mod:`facegate.core.signing`.

Wire format: one JSON object with exactly four keys::

    {"alg": "Ed25519", "kid": "<16 hex>", "event": {...DoorEvent...}, "sig": "<128 hex>"}

``sig`` is the Ed25519 signature, by the door's private key, of::

    b"facegate door event v1\\n" + canonical_json({"alg": ..., "event": ..., "kid": ...})

(canonical JSON: sorted keys, no spaces, UTF-8, no NaN). ``kid`` names the
key: the first 8 bytes, in hex, of SHA-256 over the raw 32-byte public key,
so a lock computes the id of every key it holds and a rotated key has a new
id. The event carries ``stream_id``, its entry id in the door's stream,
under the signature: a lock may resume from it after a reconnect.

A lock holds only public keys (:class:`DoorPublicKey`, 64 hex from
``facegate doors key DOOR``): what it stores can check a signature, never
make one, so a stolen lock cannot open any door.

:func:`verify_event` returns the :class:`~facegate.core.messages.DoorEvent`
or raises :class:`EventRejected` whose ``reason`` is one of

``malformed``    not the wire format, too large, or signed fields that do not
                 validate (this includes an event without a stream id: the
                 audit record of an approach's frame that did not open);
``forged``       an algorithm other than Ed25519, no key id or signature of the
                 right form, or an event for another door;
``unknown_key``  signed with a key this lock does not hold (another door's, a
                 retired one, or a new one not installed yet);
``tampered``     the signature does not match the content, or the stream entry
                 that carried it is not the one it was signed for;
``expired``      now is past ``expires_at``, or ``issued_at`` is further in the
                 future than the allowed clock skew;
``replayed``     the guard has already accepted this event id;
``not_recorded`` the guard could not record the event durably (a lock must not
                 act on an event it might act on again after a restart).

Nothing else escapes, whatever the bytes (``tests/unit/test_event_verify_props.py``
checks it with hypothesis).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from facegate.core.errors import BadMessageError, FacegateError
from facegate.core.messages import DoorEvent

ALG: Final = "Ed25519"
WIRE_KEYS: Final = frozenset({"alg", "event", "kid", "sig"})
SIGNED_PREFIX: Final = b"facegate door event v1\n"
REJECT_REASONS: Final = (
    "malformed",
    "forged",
    "unknown_key",
    "tampered",
    "expired",
    "replayed",
    "not_recorded",
)
MAX_WIRE_BYTES: Final = 16 * 1024
_KID_RE = re.compile(r"[0-9a-f]{16}\Z")
_SIG_RE = re.compile(r"[0-9a-f]{128}\Z")
_PUBLIC_HEX_RE = re.compile(r"[0-9a-f]{64}\Z")


class EventRejected(FacegateError):  # noqa: N818 - the name DESIGN.md gives
    """A door event a lock must ignore; ``reason`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def canonical_json(obj: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8, no NaN: the form that is signed."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def signed_message(kid: str, event: dict[str, Any]) -> bytes:
    """The exact bytes an event's signature covers (``alg``, ``kid`` and the event)."""
    return SIGNED_PREFIX + canonical_json({"alg": ALG, "event": event, "kid": kid})


def key_id(raw_public_key: bytes) -> str:
    """The id of a public key: 16 hex of SHA-256 over its 32 raw bytes."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


class DoorPublicKey:
    """One door's Ed25519 public key: verifies, cannot sign."""

    __slots__ = ("_key", "kid", "raw")

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self.raw = raw
        self.kid = key_id(raw)
        self._key = Ed25519PublicKey.from_public_bytes(raw)

    @classmethod
    def from_text(cls, text: str) -> DoorPublicKey:
        """From the 64 lower-case hex digits ``facegate doors key`` prints."""
        value = text.strip()
        if not _PUBLIC_HEX_RE.match(value):
            raise ValueError("a door's public key is 64 lower-case hex digits")
        return cls(bytes.fromhex(value))

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DoorPublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"DoorPublicKey(kid={self.kid})"


KeySpec = DoorPublicKey | str | bytes
"""A public key as an object, 64 hex digits, or 32 raw bytes."""


class DoorKeys(Mapping[str, DoorPublicKey]):
    """The public keys a lock accepts, by key id (one normally; two while a
    key is being rotated: the old one until its last events expired)."""

    def __init__(self, keys: Iterable[KeySpec]) -> None:
        parsed: dict[str, DoorPublicKey] = {}
        for spec in keys:
            key = _parse_key(spec)
            parsed[key.kid] = key
        if not parsed:
            raise ValueError("a lock needs at least one public key")
        self._keys = parsed

    @classmethod
    def of(cls, spec: DoorKeys | KeySpec | Iterable[KeySpec]) -> DoorKeys:
        if isinstance(spec, DoorKeys):
            return spec
        if isinstance(spec, DoorPublicKey | str | bytes):
            return cls([spec])
        return cls(spec)

    def __getitem__(self, kid: str) -> DoorPublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"DoorKeys({', '.join(self._keys)})"


def _parse_key(spec: KeySpec) -> DoorPublicKey:
    if isinstance(spec, DoorPublicKey):
        return spec
    if isinstance(spec, str):
        return DoorPublicKey.from_text(spec)
    if isinstance(spec, bytes):
        return DoorPublicKey(spec)
    raise TypeError(f"not a public key: {type(spec).__name__}")


class EventGuard(Protocol):
    """What remembers accepted events (in memory, or on disk for a lock
    that must survive a restart: :class:`facegate.clients.lock_state.LockState`)."""

    def accept(self, event: DoorEvent, now: float) -> None:
        """Remember ``event`` as accepted, or raise ``EventRejected``
        (``replayed``; ``not_recorded`` when it cannot be remembered)."""


class ReplayGuard:
    """Remembers the ids of accepted events until they expire (in memory).

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

    def items(self) -> list[tuple[str, float]]:
        """``(event id, expires_at)`` of every remembered event."""
        return list(self._expiry.items())

    def purge(self, now: float) -> None:
        """Forget the ids whose events expired before ``now``."""
        while self._heap and self._heap[0][0] < now:
            expires_at, event_id = heapq.heappop(self._heap)
            if self._expiry.get(event_id) == expires_at:
                del self._expiry[event_id]

    def check_and_remember(self, event_id: str, expires_at: float, now: float) -> None:
        """Raise ``EventRejected("replayed")`` when ``event_id`` was seen
        (or the guard is full); otherwise remember it until ``expires_at``."""
        self.purge(now)
        if event_id in self._expiry:
            raise EventRejected("replayed", f"event {event_id} was already accepted")
        if len(self._expiry) >= self.max_entries:
            raise EventRejected("replayed", "replay guard is full; refusing new events")
        self._expiry[event_id] = expires_at
        heapq.heappush(self._heap, (expires_at, event_id))

    def forget(self, event_id: str) -> None:
        """Undo a remember (the heap entry is skipped when it comes up)."""
        self._expiry.pop(event_id, None)

    def accept(self, event: DoorEvent, now: float) -> None:
        self.check_and_remember(event.id, event.expires_at, now)


def _parse(wire: bytes | str) -> tuple[dict[str, Any], str, str, bytes]:
    """The outer object's checks: ``(event body, kid, door named, signature)``."""
    if not isinstance(wire, bytes | str):
        raise EventRejected("malformed", "not bytes or text")
    if len(wire) > MAX_WIRE_BYTES:
        raise EventRejected("malformed", f"larger than {MAX_WIRE_BYTES} bytes")
    try:
        outer = json.loads(wire)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise EventRejected("malformed", "not JSON") from exc
    if not isinstance(outer, dict) or set(outer) != WIRE_KEYS:
        raise EventRejected("malformed", "want an object with exactly alg, event, kid, sig")
    body, alg, kid, sig = outer["event"], outer["alg"], outer["kid"], outer["sig"]
    if not isinstance(body, dict):
        raise EventRejected("malformed", '"event" is not an object')
    if alg != ALG:
        raise EventRejected("forged", f"algorithm {_shown(alg)} is not {ALG}")
    if not isinstance(kid, str) or not _KID_RE.match(kid):
        raise EventRejected("forged", "no key id of the right form (16 hex)")
    if not isinstance(sig, str) or not _SIG_RE.match(sig):
        raise EventRejected("forged", "no signature of the right form (128 hex)")
    return body, kid, _shown(body.get("door")), bytes.fromhex(sig)


def _shown(value: object) -> str:
    """A short, safe rendering of an untrusted JSON value for a message."""
    return repr(value[:80]) if isinstance(value, str) else type(value).__name__


def verify_event(
    wire: bytes | str,
    keys: DoorKeys | KeySpec | Iterable[KeySpec],
    door: str,
    *,
    now: float,
    guard: EventGuard | None = None,
    max_skew_s: float = 5.0,
    stream_id: str | None = None,
) -> DoorEvent:
    """Check a wire event for ``door`` and return it, or raise ``EventRejected``.

    ``keys``: the door's public key(s) (see :class:`DoorKeys`); ``now``: the
    lock's clock (unix seconds); ``guard`` (a lock always passes one) refuses
    an event id it accepted before and remembers this one; ``stream_id``,
    when the wire was read from the door's stream, is the entry's id, which
    must be the one signed. The checks run in this order: form, algorithm,
    door, key, signature, fields, stream id, time, replay; the guard
    remembers an event only when everything else passed.
    """
    keyring = DoorKeys.of(keys)
    body, kid, named_door, signature = _parse(wire)
    if body.get("door") != door:
        raise EventRejected("forged", f"event is for door {named_door}, not {door!r}")
    key = keyring.get(kid)
    if key is None:
        raise EventRejected("unknown_key", f"key {kid} is not one this lock holds")
    try:
        message = signed_message(kid, body)
    except (ValueError, TypeError, RecursionError) as exc:  # NaN, infinity: never signed by us
        raise EventRejected("malformed", "event does not serialise canonically") from exc
    if not key.verify(signature, message):
        raise EventRejected("tampered", "signature does not match the content")
    try:
        event = DoorEvent.from_dict(body)
    except (BadMessageError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EventRejected("malformed", str(exc)[:200]) from exc
    if event.stream_id is None:
        raise EventRejected(
            "malformed", "event carries no stream id (not a door event: never in a door stream)"
        )
    if stream_id is not None and stream_id != event.stream_id:
        raise EventRejected(
            "tampered", f"stream entry {stream_id[:40]} carries event signed for {event.stream_id}"
        )
    if now > event.expires_at:
        raise EventRejected("expired", f"expired {now - event.expires_at:.3f} s ago")
    if event.issued_at > now + max_skew_s:
        raise EventRejected("expired", "issued in the future (clock skew?)")
    if guard is not None:
        guard.accept(event, now)
    return event


__all__ = [
    "ALG",
    "MAX_WIRE_BYTES",
    "REJECT_REASONS",
    "DoorKeys",
    "DoorPublicKey",
    "EventGuard",
    "EventRejected",
    "ReplayGuard",
    "canonical_json",
    "key_id",
    "signed_message",
    "verify_event",
]
