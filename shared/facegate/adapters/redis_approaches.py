"""Approaches in Redis: several frames of one passage, one door event.

Mixed into :class:`~facegate.adapters.redis_store.RedisStore` (it uses
its ``client``, ``stream_maxlen`` and ``decision_ttl_s``). Two Lua scripts,
each atomic, so racing matchers agree; both write door events the way every
door event is written (:mod:`facegate.adapters.recording`: the stream id is
chosen and signed first, ``xadd_at`` appends at exactly that id or answers
the stream's last id, before the script writes anything else):

- ``record_frame``: the frame's exactly-once gate (its decision key, as for
  any upload) and its audit entry (fields ``approach``, ``frame`` = the
  :class:`~facegate.adapters.recording.FrameStatus`, ``published``). The
  frame is a door event (door stream at its signed id, channel, decision
  record = the door wire) only when it is the approach's first OPEN while
  the approach is open: no door event yet, before the end of its window,
  within its frames. Any other frame's decision record and audit entry hold
  its audit wire (signed, no stream id); the approach hash keeps the
  closest DENY frame and the approach stays in ``facegate:approaches:due``
  (scored by its window's end).
- ``close_approach``: the closing DENY, a door event written once (the
  approach hash's ``outcome`` field is the gate), whoever runs it: the
  matcher that handles a frame after the window, or any matcher's sweeper.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import redis

from facegate.adapters.recording import (
    FrameRecorded,
    Recorded,
    Signer,
    record_frame_signed,
    record_signed,
)
from facegate.adapters.redis_codec import XADD_AT_LUA, text, translated
from facegate.adapters.store import ApproachState
from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import DoorEvent

log = logging.getLogger(__name__)

APPROACH_TTL_S: Final = 86_400
"""An approach's record lives as long as the decisions of its frames."""

RECORD_FRAME_LUA: Final = XADD_AT_LUA + """
-- KEYS: decision key, door stream, audit stream, approach hash, due set
-- ARGV: door wire, decision ttl, maxlen, channel, door, upload_id, decision, reason,
--       event id, approach, window end, now, max frames, distance|'', person|'',
--       camera, approach ttl, stream id (of the door wire), audit wire
-- -> {1, frame status}; {0, ''} the upload already has a decision;
--    {2, last id} the frame opens but its stream id was taken: sign again above
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, ''}
end
local outcome = redis.call('HGET', KEYS[4], 'outcome')
local frames = tonumber(redis.call('HGET', KEYS[4], 'frames') or '0') + 1
local wend = ARGV[11]
local stored = redis.call('HGET', KEYS[4], 'window_end')
if stored and tonumber(stored) < tonumber(wend) then wend = stored end
local status
if outcome then status = 'concluded'
elseif tonumber(ARGV[12]) >= tonumber(wend) then status = 'late'
elseif frames > tonumber(ARGV[13]) then status = 'over'
elseif ARGV[7] == 'OPEN' then status = 'opened'
else status = 'recorded' end
local wire = ARGV[19]
local published = '0'
if status == 'opened' then
  local added, answer = xadd_at(KEYS[2], ARGV[3], ARGV[18], ARGV[1])
  if not added then
    return answer
  end
  wire = ARGV[1]
  published = '1'
  redis.call('HSET', KEYS[4], 'outcome', 'OPEN', 'event', ARGV[9], 'stream_id', added)
  redis.call('ZREM', KEYS[5], KEYS[4])
elseif not outcome then
  if ARGV[7] == 'DENY' then
    local cur = redis.call('HGET', KEYS[4], 'best_upload')
    local bd = redis.call('HGET', KEYS[4], 'best_distance')
    local d = ARGV[14]
    local take = not cur
    if d ~= '' then
      if (not bd) or bd == '' or tonumber(d) < tonumber(bd) then take = true end
    elseif (not bd) or bd == '' then
      take = true
    end
    if take then
      redis.call('HSET', KEYS[4], 'best_upload', ARGV[6], 'best_reason', ARGV[8],
                 'best_person', ARGV[15], 'best_distance', d)
    end
  end
  redis.call('ZADD', KEYS[5], wend, KEYS[4])
end
redis.call('SET', KEYS[1], wire, 'EX', ARGV[2])
redis.call('HSET', KEYS[4], 'frames', frames, 'window_end', wend, 'door', ARGV[5],
           'camera', ARGV[16], 'approach', ARGV[10], 'last_upload', ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[17])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
           'door', ARGV[5], 'upload_id', ARGV[6], 'decision', ARGV[7],
           'reason', ARGV[8], 'id', ARGV[9], 'event', wire,
           'approach', ARGV[10], 'frame', status, 'published', published)
if published == '1' then
  redis.call('PUBLISH', ARGV[4], wire)
end
return {1, status}
"""

CLOSE_APPROACH_LUA: Final = XADD_AT_LUA + """
-- KEYS: approach hash, due set, door stream, audit stream
-- ARGV: wire, maxlen, channel, door, upload_id, reason, event id, approach, stream id
-- -> {1, stream id} closed; {0, ''} the approach had its door event (or is gone);
--    {2, last id} the stream id was taken: sign again above
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'outcome') then
  redis.call('ZREM', KEYS[2], KEYS[1])
  return {0, ''}
end
local added, answer = xadd_at(KEYS[3], ARGV[2], ARGV[9], ARGV[1])
if not added then
  return answer
end
redis.call('HSET', KEYS[1], 'outcome', 'DENY', 'event', ARGV[7], 'stream_id', added)
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*',
           'door', ARGV[4], 'upload_id', ARGV[5], 'decision', 'DENY',
           'reason', ARGV[6], 'id', ARGV[7], 'event', ARGV[1],
           'approach', ARGV[8], 'frame', 'close', 'published', '1')
redis.call('PUBLISH', ARGV[3], ARGV[1])
return {1, added}
"""


def parse_approach(key: str, raw: dict[str, str]) -> ApproachState | None:
    """The due-set view of an approach hash; ``None`` when malformed."""
    try:
        upload_id = raw.get("best_upload") or raw["last_upload"]
        distance = raw.get("best_distance") or ""
        return ApproachState(
            key=key,
            door=keys.check_door(raw["door"]),
            camera=keys.check_camera(raw["camera"]),
            approach=keys.check_upload_id(raw["approach"]),
            window_end=float(raw["window_end"]),
            frames=int(raw.get("frames", "0")),
            upload_id=keys.check_upload_id(upload_id),
            reason=raw.get("best_reason") or None,
            person=raw.get("best_person") or None,
            distance=float(distance) if distance else None,
        )
    except (KeyError, ValueError, BadMessageError):
        log.warning("malformed approach record %s: dropped from the due set", key)
        return None


class RedisApproaches:
    """The :class:`~facegate.adapters.store.ApproachStore` part of RedisStore."""

    client: redis.Redis
    stream_maxlen: int
    decision_ttl_s: int

    def _script(self, name: str, source: str) -> Any:
        cache: dict[str, Any] = self.__dict__.setdefault("_approach_scripts", {})
        if name not in cache:
            cache[name] = self.client.register_script(source)
        return cache[name]

    def record_frame(
        self, event: DoorEvent, sign: Signer, *, window_end: float, now: float, max_frames: int
    ) -> FrameRecorded:
        if event.approach is None or event.camera is None:
            raise ValueError("record_frame needs an event with an approach and a camera")
        key = keys.approach_key(event.door, event.camera, event.approach)

        def attempt(stamped: DoorEvent, wire: bytes, audit_wire: bytes) -> tuple[int, str]:
            assert stamped.stream_id is not None
            with translated("record_frame"):
                code, answer = self._script("frame", RECORD_FRAME_LUA)(
                    keys=[
                        keys.decision_key(event.upload_id),
                        keys.door_stream(event.door),
                        keys.AUDIT_STREAM,
                        key,
                        keys.APPROACHES_DUE,
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
                        event.approach,
                        repr(float(window_end)),
                        repr(float(now)),
                        max_frames,
                        "" if event.distance is None else repr(float(event.distance)),
                        event.person or "",
                        event.camera,
                        APPROACH_TTL_S,
                        stamped.stream_id,
                        audit_wire,
                    ],
                )
            return int(code), str(text(answer))

        return record_frame_signed(event, sign, attempt)

    def due_approaches(self, now: float, limit: int = 100) -> list[ApproachState]:
        with translated("due_approaches"):
            found: Any = self.client.zrangebyscore(
                keys.APPROACHES_DUE, "-inf", now, start=0, num=limit
            )
            names = [str(text(n)) for n in found]
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            hashes = pipe.execute() if names else []
        out: list[ApproachState] = []
        for key, raw in zip(names, hashes, strict=True):
            fields = {str(text(k)): str(text(v)) for k, v in raw.items()}
            state = parse_approach(key, fields) if fields and "outcome" not in fields else None
            if state is None:
                with translated("due_approaches"):
                    self.client.zrem(keys.APPROACHES_DUE, key)
                continue
            out.append(state)
        return out

    def record_approach_close(self, event: DoorEvent, sign: Signer, key: str) -> Recorded | None:
        def attempt(stamped: DoorEvent, wire: bytes) -> tuple[int, str]:
            assert stamped.stream_id is not None
            with translated("record_approach_close"):
                code, answer = self._script("close", CLOSE_APPROACH_LUA)(
                    keys=[
                        key,
                        keys.APPROACHES_DUE,
                        keys.door_stream(event.door),
                        keys.AUDIT_STREAM,
                    ],
                    args=[
                        wire,
                        self.stream_maxlen,
                        keys.door_channel(event.door),
                        event.door,
                        event.upload_id,
                        event.reason.value,
                        event.id,
                        event.approach or "",
                        stamped.stream_id,
                    ],
                )
            return int(code), str(text(answer))

        return record_signed(event, sign, attempt)


__all__ = ["APPROACH_TTL_S", "RedisApproaches", "parse_approach"]
