"""The door-event half of :class:`~facegate.adapters.redis_store.RedisStore`:
decisions recorded exactly once, the door and audit streams, and each door's
signing-key version.

A decision is recorded by ``RECORD_LUA`` (:mod:`facegate.adapters.redis_codec`)
at the stream id the event was signed with
(:func:`facegate.adapters.store.record_signed` chooses it and signs again
when another decision took it first). A door's key version lives in its own
key (``facegate:door:<door>:key_version``), not in the policy hash, so
replacing or removing a door never brings an old key back.
"""

from __future__ import annotations

from typing import Any

import redis

from facegate.adapters.redis_codec import stream_entries, text, translated
from facegate.adapters.store import Recorded, Signer, StreamEntry, record_signed
from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import DoorEvent


class RedisDoorEvents:
    """Mixed into ``RedisStore``, which sets these attributes."""

    client: redis.Redis
    stream_maxlen: int
    changes_maxlen: int
    decision_ttl_s: int
    _record: Any
    _rotate_key: Any

    def record_decision(self, event: DoorEvent, sign: Signer) -> Recorded | None:
        """Record and publish a signed event exactly once per upload, with
        the next id of its door's stream under the signature.

        Returns ``None`` (and changes nothing) when the upload already has a
        decision."""
        return record_signed(event, sign, self._record_once)

    def _record_once(self, event: DoorEvent, wire: bytes) -> tuple[int, str]:
        assert event.stream_id is not None
        with translated("record_decision"):
            code, answer = self._record(
                keys=[
                    keys.decision_key(event.upload_id),
                    keys.door_stream(event.door),
                    keys.AUDIT_STREAM,
                ],
                args=[
                    wire,
                    self.decision_ttl_s,
                    self.stream_maxlen,
                    keys.door_channel(event.door),
                    event.door,
                    event.upload_id,
                    event.decision.value,
                    event.reason.value,
                    event.id,
                    event.stream_id,
                ],
            )
        return int(code), str(text(answer))

    def get_decision(self, upload_id: str) -> bytes | None:
        """The signed event recorded for an upload, if any."""
        with translated("get_decision"):
            value = self.client.get(keys.decision_key(upload_id))
        return value  # type: ignore[return-value]

    def read_log(self, door: str | None = None, count: int = 20) -> list[StreamEntry]:
        """The latest ``count`` signed events, newest first, as
        ``(stream id, wire)``: of one door, or of all doors (audit stream)."""
        stream = keys.AUDIT_STREAM if door is None else keys.door_stream(door)
        with translated("read_log"):
            entries = self.client.xrevrange(stream, count=count)
        return stream_entries(entries)

    def events_since(self, door: str, last_id: str = "0-0", count: int = 100) -> list[StreamEntry]:
        """A door's events after stream id ``last_id``, oldest first: what a
        lock replays after a reconnect."""
        with translated("events_since"):
            entries = self.client.xrange(keys.door_stream(door), min=f"({last_id}", count=count)
        return stream_entries(entries)

    # --- signing-key versions -------------------------------------------------------

    def door_key_version(self, door: str) -> int:
        """The version of the door's signing key (1 until it is rotated)."""
        with translated("door_key_version"):
            raw = self.client.get(keys.door_key_version_key(door))
        if raw is None:
            return 1
        try:
            version = int(raw)  # type: ignore[arg-type]
        except ValueError as exc:
            raise BadMessageError(f"door {door}: malformed key version {raw!r}") from exc
        if version < 1:
            raise BadMessageError(f"door {door}: key version {version} < 1")
        return version

    def rotate_door_key(self, door: str) -> int:
        """Move the door to its next key version (and bump the gallery
        version, so that matchers sign with it from their next upload)."""
        with translated("rotate_door_key"):
            version = self._rotate_key(
                keys=[keys.door_key_version_key(door), keys.GALLERY_VERSION, keys.GALLERY_CHANGES],
                args=[self.changes_maxlen, door],
            )
        return int(version)


__all__ = ["RedisDoorEvents"]
