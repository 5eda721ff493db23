"""Ingest's state in Redis: claims, pending marks, the reconciler's lease
and cursor (a part of :class:`~facegate.adapters.redis_store.RedisStore`).

::

    facegate:claim:<upload_id>     hash    key, door, camera, badge[, approach, direct,
                                           enqueued]; TTL
    facegate:pending:<upload_id>   string  "1"; TTL (sent on, decision awaited)
    facegate:reconciler:lease      string  the holder's id; TTL (one reconciler at a time)
    facegate:reconciler:cursor     string  the last object key a pass looked at

The lease is renewed and released only by its holder (a compare-and-set in
Lua), so a slow instance whose lease expired cannot cut a newer holder's
lease short.
"""

from __future__ import annotations

from typing import Any, Final

import redis

from facegate.adapters.redis_codec import MARK_ENQUEUED_LUA, text, translated
from facegate.adapters.store import Claim
from facegate.core import keys
from facegate.core.errors import BadMessageError

HOLD_LEASE_LUA: Final = """
-- KEYS: lease; ARGV: holder, ttl in ms. Take it when free, renew it when ours.
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

RELEASE_LEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisIngestState:
    """Claims and the reconciler's state; mixed into ``RedisStore``."""

    client: redis.Redis

    def _register_ingest_scripts(self) -> None:
        self._mark_enqueued = self.client.register_script(MARK_ENQUEUED_LUA)
        self._hold_lease = self.client.register_script(HOLD_LEASE_LUA)
        self._release_lease = self.client.register_script(RELEASE_LEASE_LUA)

    # --- claims ---------------------------------------------------------------------

    def put_claim(
        self,
        upload_id: str,
        *,
        key: str,
        door: str,
        camera: str,
        badge: str | None,
        ttl_s: int,
        direct: bool = False,
        approach: str | None = None,
    ) -> None:
        """Bind a badge (or none) and an approach (or none) to the object
        key of one upload."""
        mapping = {
            "key": key,
            "door": keys.check_door(door),
            "camera": keys.check_camera(camera),
            "badge": "" if badge is None else keys.check_person(badge),
        }
        if direct:
            mapping["direct"] = "1"
        if approach is not None:
            mapping["approach"] = keys.check_upload_id(approach)
        name = keys.claim_key(upload_id)
        with translated("put_claim"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(name, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(name, ttl_s)
            pipe.execute()

    def get_claim(self, upload_id: str) -> Claim | None:
        with translated("get_claim"):
            raw = self.client.hgetall(keys.claim_key(upload_id))
        if not raw:
            return None
        fields = {str(text(k)): str(text(v)) for k, v in raw.items()}  # type: ignore[union-attr]
        try:
            enqueued = fields.get("enqueued")
            return Claim(
                upload_id=upload_id,
                key=fields["key"],
                door=fields["door"],
                camera=fields["camera"],
                badge=fields["badge"] or None,
                direct=fields.get("direct") == "1",
                enqueued_at=None if not enqueued else float(enqueued),
                approach=fields.get("approach") or None,
            )
        except (KeyError, ValueError) as exc:
            raise BadMessageError(f"claim of {upload_id} is malformed") from exc

    def mark_enqueued(self, upload_id: str, when: float) -> None:
        """Note that the upload was sent to the encoder (only while its claim exists)."""
        with translated("mark_enqueued"):
            self._mark_enqueued(keys=[keys.claim_key(upload_id)], args=[f"{when:.6f}"])

    # --- pending marks and the reconciler ------------------------------------------------

    def mark_pending(self, upload_id: str, ttl_s: int) -> None:
        with translated("mark_pending"):
            self.client.set(keys.pending_key(upload_id), "1", ex=max(1, int(ttl_s)))

    def is_pending(self, upload_id: str) -> bool:
        with translated("is_pending"):
            return bool(self.client.exists(keys.pending_key(upload_id)))

    def hold_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        with translated("hold_lease"):
            got: Any = self._hold_lease(keys=[name], args=[holder, max(1, int(ttl_s * 1000))])
        return bool(got)

    def release_lease(self, name: str, holder: str) -> None:
        with translated("release_lease"):
            self._release_lease(keys=[name], args=[holder])

    def get_cursor(self, name: str) -> str:
        with translated("get_cursor"):
            value: Any = self.client.get(name)
        return str(text(value) or "")

    def set_cursor(self, name: str, value: str) -> None:
        with translated("set_cursor"):
            self.client.set(name, value)


__all__ = ["HOLD_LEASE_LUA", "RELEASE_LEASE_LUA", "RedisIngestState"]
