"""How facegate's records look in Redis: encodings as bytes, the hashes of
probes and people, the Lua scripts, and redis-py errors translated.

Encodings are stored as raw little-endian float32 bytes together with the
``model`` id, the dimension ``dim`` and the storage format ``version``, so a
reader refuses vectors of another model or shape instead of comparing them.
Anything malformed raises :class:`~facegate.core.errors.BadMessageError`;
a redis-py error becomes :class:`~facegate.core.errors.RedisUnavailableError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import redis

from facegate.adapters.metrics import backend_error
from facegate.adapters.store import Probe
from facegate.core.errors import BadMessageError, RedisUnavailableError

log = logging.getLogger(__name__)

FORMAT_VERSION: Final = "1"
"""Version of the stored encoding layout (``float32`` little endian rows)."""

_F32: Final = np.dtype("<f4")

MARK_ENQUEUED_LUA: Final = """
-- only while the claim exists (HSET would otherwise create a claim without a TTL)
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'enqueued', ARGV[1])
end
return 0
"""

XADD_AT_LUA: Final = """
-- xadd_at(stream, maxlen, id, wire): append the wire at exactly the id it was
-- signed with -> the id; or nil and {2, last-generated-id} when the stream is
-- already at or past it (the caller signs again above); or nil and the error.
-- Every script that writes a door event starts with it, before any write.
local function xadd_at(stream, maxlen, id, wire)
  local added = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, id, 'event', wire)
  if type(added) == 'table' and added.err then
    if not string.find(added.err, 'equal or smaller', 1, true) then
      return nil, added
    end
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        return nil, {2, info[i + 1]}
      end
    end
    return nil, redis.error_reply('no last-generated-id for ' .. stream)
  end
  return added, nil
end
"""

RECORD_LUA: Final = XADD_AT_LUA + """
-- KEYS: decision key, door stream, audit stream
-- ARGV: wire, ttl seconds, maxlen, channel, door, upload_id, decision, reason, event id,
--       stream id (the one the wire was signed with)
-- -> {1, stream id} recorded; {0, ''} the upload already has a decision;
--    {2, last id} the stream is already at or past the id: sign again above it
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, ''}
end
local added, answer = xadd_at(KEYS[2], ARGV[3], ARGV[10], ARGV[1])
if not added then
  return answer
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
           'door', ARGV[5], 'upload_id', ARGV[6], 'decision', ARGV[7],
           'reason', ARGV[8], 'id', ARGV[9], 'event', ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return {1, added}
"""

CHANGE_LUA: Final = """
-- change(version key, changes stream, maxlen, kind, name): the next gallery
-- version, with its change record appended first (entry id '<version>-0').
-- Every script that changes people or doors calls it before its writes, so
-- no write lands without its record and versions have no gaps. A stream
-- ahead of the version (the version key was lost) is dropped and restarted:
-- readers then see a gap and reload.
local function change(vkey, skey, maxlen, kind, name)
  local v = tonumber(redis.call('GET', vkey) or '0') + 1
  local id = v .. '-0'
  local added = redis.pcall('XADD', skey, 'MAXLEN', '~', maxlen, id, 'kind', kind, 'name', name)
  if type(added) == 'table' and added.err then
    redis.call('DEL', skey)
    redis.call('XADD', skey, 'MAXLEN', '~', maxlen, id, 'kind', kind, 'name', name)
  end
  redis.call('SET', vkey, v)
  return v
end
"""

ROTATE_KEY_LUA: Final = CHANGE_LUA + """
-- KEYS: the door's key version, gallery version, change stream
-- ARGV: change stream maxlen, door. A door never rotated is at 1.
local version = tonumber(redis.call('GET', KEYS[1]) or '1') + 1
change(KEYS[2], KEYS[3], ARGV[1], 'door', ARGV[2])
redis.call('SET', KEYS[1], version)
return version
"""


@contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        backend_error("redis")
        raise RedisUnavailableError(f"redis: {what} failed: {exc}") from exc


def text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def matrix(
    rows: Sequence[bytes], dim: int, what: str, count: int | None = None
) -> npt.NDArray[np.float32]:
    if count is not None and len(rows) != count:
        raise BadMessageError(f"{what}: {len(rows)} encodings stored, {count} announced")
    out = np.empty((len(rows), dim), dtype=np.float32)
    for i, raw in enumerate(rows):
        if len(raw) != dim * 4:
            raise BadMessageError(f"{what}: encoding {i} has {len(raw)} bytes, want {dim * 4}")
        out[i] = np.frombuffer(raw, dtype=_F32)
    if not np.all(np.isfinite(out)):
        raise BadMessageError(f"{what}: non-finite values in stored encodings")
    return out


def stream_entries(raw: Any) -> list[tuple[str, bytes]]:
    """``XRANGE`` replies as ``(stream id, wire)``."""
    out: list[tuple[str, bytes]] = []
    for sid, fields in raw:
        if b"event" in fields:  # admin records share the audit stream (redis_audit.py)
            out.append((str(text(sid)), bytes(fields[b"event"])))
    return out


def decode_probe(key: str, raw: Mapping[bytes, bytes]) -> Probe:
    """A probe hash (``model``, ``dim``, ``version``, ``faces``, ``enc:<i>``, ``box:<i>``)."""
    try:
        version = raw[b"version"].decode()
        dim = int(raw[b"dim"])
        faces = int(raw[b"faces"])
        model_id = raw[b"model"].decode()
    except (KeyError, ValueError) as exc:
        raise BadMessageError(f"{key}: malformed probe ({exc})") from exc
    if version != FORMAT_VERSION:
        raise BadMessageError(f"{key}: unsupported format version {version}")
    if not 0 < dim <= 4096 or faces < 0:
        raise BadMessageError(f"{key}: bad dim/faces {dim}/{faces}")
    try:
        rows = [raw[f"enc:{i}".encode()] for i in range(faces)]
    except KeyError as exc:
        raise BadMessageError(f"{key}: encoding missing ({exc})") from exc
    boxes: list[dict[str, Any]] = []
    for i in range(faces):
        box = raw.get(f"box:{i}".encode())
        if box is not None:
            boxes.append(json.loads(box))
    return Probe(model_id, matrix(rows, dim, key, faces), tuple(boxes))


def decode_templates(
    person: str, raw: Mapping[bytes, bytes], model_id: str | None
) -> npt.NDArray[np.float32] | None:
    """A person hash's templates ``(k, d)``; ``None`` when it is empty or
    holds another model's templates (logged) than ``model_id``."""
    if not raw:
        return None
    stored_model = text(raw.get(b"model"))
    if model_id is not None and stored_model != model_id:
        log.warning(
            "skipping %s: templates of model %r, matcher uses %r", person, stored_model, model_id
        )
        return None
    try:
        dim = int(raw[b"dim"])
    except (KeyError, ValueError) as exc:
        raise BadMessageError(f"person {person}: malformed templates") from exc
    rows = [v for k, v in sorted(raw.items()) if k.startswith(b"enc:")]
    return matrix(rows, dim, f"person {person}") if rows else None
