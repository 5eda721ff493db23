"""Redis adapter: probes, people and templates, doors, claims, decisions.

Every key name comes from :mod:`facegate.core.keys`. Every redis-py error that
crosses this class becomes :class:`~facegate.core.errors.RedisUnavailableError`
(``raise ... from exc``), a transient error: the Celery task retries.
Malformed data found in Redis raises
:class:`~facegate.core.errors.BadMessageError`.

Encodings are stored as raw little-endian float32 bytes together with the
``model`` id, the dimension ``dim`` and the storage format ``version``, so a
reader refuses vectors of another model or shape instead of comparing them.

Recording a decision is one Lua script (:meth:`RedisStore.record_decision`):
``SET decision NX EX``; only when that set the key, ``XADD`` to the door's
stream and to the audit stream (both capped with ``MAXLEN ~``) and
``PUBLISH`` on the door's channel. Redis runs a script atomically, so a
redelivered task, or two workers racing on the same upload, produce exactly
one decision, one stream entry per stream and one publish.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import redis

from facegate.core import keys
from facegate.core.errors import BadMessageError, RedisUnavailableError
from facegate.core.messages import DoorEvent
from facegate.core.policy import DoorPolicy

log = logging.getLogger(__name__)

FORMAT_VERSION: Final = "1"
"""Version of the stored encoding layout (``float32`` little endian rows)."""

DEFAULT_DECISION_TTL_S: Final = 86_400
"""How long the exactly-once gate of an upload lives (far beyond any redelivery)."""

_F32: Final = np.dtype("<f4")

T = TypeVar("T")

_RECORD_LUA: Final = """
-- KEYS: decision key, door stream, audit stream
-- ARGV: wire, ttl seconds, maxlen, channel, door, upload_id, decision, reason, event id
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
           'door', ARGV[5], 'upload_id', ARGV[6], 'decision', ARGV[7],
           'reason', ARGV[8], 'id', ARGV[9], 'event', ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Probe:
    """The encodings an encoder stored for one upload."""

    model_id: str
    encodings: npt.NDArray[np.float32]
    """``(faces, dim)``; ``(0, dim)`` when no face was found."""
    boxes: tuple[dict[str, Any], ...] = ()

    @property
    def faces(self) -> int:
        return int(self.encodings.shape[0])


@dataclass(frozen=True)
class Claim:
    """The badge a camera claimed for an upload, bound to its object key."""

    upload_id: str
    key: str
    door: str
    camera: str
    badge: str | None


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise RedisUnavailableError(f"redis: {what} failed: {exc}") from exc


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _matrix(
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


def _entries(raw: Any) -> list[tuple[str, bytes]]:
    """``XRANGE`` replies as ``(stream id, wire)``."""
    out: list[tuple[str, bytes]] = []
    for sid, fields in raw:
        out.append((str(_text(sid)), bytes(fields[b"event"])))
    return out


def _as_rows(encodings: npt.ArrayLike, what: str) -> npt.NDArray[np.float32]:
    arr = np.asarray(encodings, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{what}: want a (k, d) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=_F32)


class RedisStore:
    """All of facegate's Redis state, behind one small interface.

    ``client`` is a ``redis.Redis`` (bytes responses, the default). Nothing
    connects until the first call.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream_maxlen: int = 10_000,
        decision_ttl_s: int = DEFAULT_DECISION_TTL_S,
    ) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisStore needs a client with bytes replies (decode_responses off)")
        self.client = client
        self.stream_maxlen = stream_maxlen
        self.decision_ttl_s = decision_ttl_s
        self._record = client.register_script(_RECORD_LUA)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """A store on a fresh client for ``url`` (short socket timeouts)."""
        client = redis.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        return cls(client, **kwargs)

    def close(self) -> None:
        self.client.close()

    def ping(self) -> bool:
        with _translated("PING"):
            return bool(self.client.ping())

    def _call(self, what: str, func: Callable[[], T]) -> T:
        with _translated(what):
            return func()

    # --- probes -------------------------------------------------------------

    def put_probe(
        self,
        upload_id: str,
        encodings: npt.ArrayLike,
        model_id: str,
        *,
        ttl_s: int,
        boxes: Sequence[dict[str, Any]] | None = None,
        dim: int | None = None,
    ) -> None:
        """Store the faces found in an upload (``(k, d)``; ``k`` may be 0,
        then give ``dim``). Replaces an earlier probe of the same upload."""
        arr = np.asarray(encodings, dtype=np.float32)
        if arr.size == 0:
            if dim is None and arr.ndim == 2:
                dim = int(arr.shape[1])
            if not dim:
                raise ValueError("an empty probe needs its dimension (dim=)")
            rows = np.zeros((0, dim), dtype=_F32)
        else:
            rows = _as_rows(arr, "probe")
        if boxes is not None and len(boxes) != rows.shape[0]:
            raise ValueError("one box per face")
        key = keys.probe_key(upload_id)
        mapping: dict[str, bytes | str] = {
            "model": model_id,
            "dim": str(rows.shape[1]),
            "version": FORMAT_VERSION,
            "faces": str(rows.shape[0]),
        }
        for i, row in enumerate(rows):
            mapping[f"enc:{i}"] = row.tobytes()
            if boxes is not None:
                mapping[f"box:{i}"] = json.dumps(boxes[i])
        with _translated("put_probe"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key, ttl_s)
            pipe.execute()

    def get_probe(self, upload_id: str) -> Probe | None:
        """The stored probe, or ``None`` when there is none (expired)."""
        key = keys.probe_key(upload_id)
        with _translated("get_probe"):
            raw: dict[bytes, bytes] = self.client.hgetall(key)  # type: ignore[assignment]
        if not raw:
            return None
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
        return Probe(model_id, _matrix(rows, dim, key, faces), tuple(boxes))

    def delete_probe(self, upload_id: str) -> None:
        self._call("delete_probe", lambda: self.client.delete(keys.probe_key(upload_id)))

    # --- people and templates -------------------------------------------------

    def gallery_version(self) -> int:
        """The counter bumped on every enrol, revoke and door change."""
        with _translated("gallery_version"):
            value = self.client.get(keys.GALLERY_VERSION)
        return int(value) if value is not None else 0  # type: ignore[arg-type]

    def add_templates(self, person: str, encodings: npt.ArrayLike, model_id: str) -> list[str]:
        """Add templates ``(k, d)`` to ``person`` (created when new); returns
        the new template ids. A person's templates must all come from one
        model: other models raise BadMessageError."""
        rows = _as_rows(encodings, f"templates of {person}")
        key = keys.person_key(person)
        with _translated("add_templates"):
            stored: Any = self.client.hmget(key, ["model", "dim"])
        model, dim = stored
        if model is not None and (_text(model) != model_id or int(dim) != rows.shape[1]):
            raise BadMessageError(
                f"{person} has templates of model {_text(model)!r} (dim {_text(dim)}); "
                f"refusing {model_id!r} (dim {rows.shape[1]}): revoke and re-enrol"
            )
        ids = [keys.new_upload_id()[:16] for _ in range(rows.shape[0])]
        mapping: dict[str, bytes | str] = {
            "model": model_id,
            "dim": str(rows.shape[1]),
            "version": FORMAT_VERSION,
        }
        for tid, row in zip(ids, rows, strict=True):
            mapping[f"enc:{tid}"] = row.tobytes()
        with _translated("add_templates"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.sadd(keys.PEOPLE, person)
            pipe.incr(keys.GALLERY_VERSION)
            pipe.execute()
        return ids

    def remove_person(self, person: str) -> bool:
        """Revoke ``person`` (all templates); ``False`` when not enrolled."""
        with _translated("remove_person"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(keys.person_key(person))
            pipe.srem(keys.PEOPLE, person)
            pipe.incr(keys.GALLERY_VERSION)
            deleted, removed, _ = pipe.execute()
        return bool(deleted or removed)

    def people(self) -> list[str]:
        with _translated("people"):
            names = self.client.smembers(keys.PEOPLE)
        return sorted(str(_text(n)) for n in names)  # type: ignore[union-attr]

    def templates_snapshot(
        self, model_id: str | None = None, *, attempts: int = 5
    ) -> tuple[int, dict[str, npt.NDArray[np.float32]]]:
        """``(version, {person: templates (k, d)})``, consistent with
        ``version``: re-read when an enrol or revoke lands meanwhile. With
        ``model_id``, people enrolled with another model are left out (and
        logged)."""
        for _ in range(attempts):
            version = self.gallery_version()
            names = self.people()
            with _translated("templates_snapshot"):
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.hgetall(keys.person_key(name))
                pipe.get(keys.GALLERY_VERSION)
                *hashes, after = pipe.execute()
            if int(after or 0) != version:
                continue
            out: dict[str, npt.NDArray[np.float32]] = {}
            for name, raw in zip(names, hashes, strict=True):
                if not raw:
                    continue
                stored_model = _text(raw.get(b"model"))
                if model_id is not None and stored_model != model_id:
                    log.warning(
                        "skipping %s: templates of model %r, matcher uses %r",
                        name,
                        stored_model,
                        model_id,
                    )
                    continue
                try:
                    dim = int(raw[b"dim"])
                except (KeyError, ValueError) as exc:
                    raise BadMessageError(f"person {name}: malformed templates") from exc
                rows = [v for k, v in sorted(raw.items()) if k.startswith(b"enc:")]
                if rows:
                    out[name] = _matrix(rows, dim, keys.person_key(name))
            return version, out
        raise RedisUnavailableError("gallery kept changing while being read; try again")

    # --- doors ------------------------------------------------------------------

    def set_door(self, policy: DoorPolicy) -> None:
        """Create or replace a door's policy."""
        key = keys.door_config_key(policy.door)
        with _translated("set_door"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=policy.to_fields())  # type: ignore[arg-type]
            pipe.sadd(keys.DOORS, policy.door)
            pipe.incr(keys.GALLERY_VERSION)
            pipe.execute()

    def get_door(
        self, door: str, *, default_threshold: float = 0.6, default_margin: float = 0.0
    ) -> DoorPolicy | None:
        """The door's policy, ``None`` when the door is not configured."""
        with _translated("get_door"):
            raw = self.client.hgetall(keys.door_config_key(door))
        if not raw:
            return None
        fields = {str(_text(k)): str(_text(v)) for k, v in raw.items()}  # type: ignore[union-attr]
        return DoorPolicy.from_fields(
            door, fields, default_threshold=default_threshold, default_margin=default_margin
        )

    def list_doors(self) -> list[str]:
        with _translated("list_doors"):
            names = self.client.smembers(keys.DOORS)
        return sorted(str(_text(n)) for n in names)  # type: ignore[union-attr]

    def delete_door(self, door: str) -> bool:
        with _translated("delete_door"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(keys.door_config_key(door))
            pipe.srem(keys.DOORS, door)
            pipe.incr(keys.GALLERY_VERSION)
            deleted, removed, _ = pipe.execute()
        return bool(deleted or removed)

    # --- claims -------------------------------------------------------------------

    def put_claim(
        self,
        upload_id: str,
        *,
        key: str,
        door: str,
        camera: str,
        badge: str | None,
        ttl_s: int,
    ) -> None:
        """Bind a badge (or none) to the object key of one upload."""
        mapping = {
            "key": key,
            "door": keys.check_door(door),
            "camera": keys.check_camera(camera),
            "badge": "" if badge is None else keys.check_person(badge),
        }
        name = keys.claim_key(upload_id)
        with _translated("put_claim"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(name, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(name, ttl_s)
            pipe.execute()

    def get_claim(self, upload_id: str) -> Claim | None:
        with _translated("get_claim"):
            raw = self.client.hgetall(keys.claim_key(upload_id))
        if not raw:
            return None
        fields = {str(_text(k)): str(_text(v)) for k, v in raw.items()}  # type: ignore[union-attr]
        try:
            return Claim(
                upload_id=upload_id,
                key=fields["key"],
                door=fields["door"],
                camera=fields["camera"],
                badge=fields["badge"] or None,
            )
        except KeyError as exc:
            raise BadMessageError(f"claim of {upload_id} is malformed") from exc

    # --- decisions ------------------------------------------------------------------

    def record_decision(self, event_wire: bytes, event: DoorEvent) -> bool:
        """Record and publish a signed event exactly once per upload.

        Returns ``False`` (and changes nothing) when the upload already has a
        decision."""
        with _translated("record_decision"):
            done = self._record(
                keys=[
                    keys.decision_key(event.upload_id),
                    keys.door_stream(event.door),
                    keys.AUDIT_STREAM,
                ],
                args=[
                    event_wire,
                    self.decision_ttl_s,
                    self.stream_maxlen,
                    keys.door_channel(event.door),
                    event.door,
                    event.upload_id,
                    event.decision.value,
                    event.reason.value,
                    event.id,
                ],
            )
        return bool(done)

    def get_decision(self, upload_id: str) -> bytes | None:
        """The signed event recorded for an upload, if any."""
        with _translated("get_decision"):
            value = self.client.get(keys.decision_key(upload_id))
        return value  # type: ignore[return-value]

    def read_log(self, door: str | None = None, count: int = 20) -> list[tuple[str, bytes]]:
        """The latest ``count`` signed events, newest first, as
        ``(stream id, wire)``: of one door, or of all doors (audit stream)."""
        stream = keys.AUDIT_STREAM if door is None else keys.door_stream(door)
        with _translated("read_log"):
            entries = self.client.xrevrange(stream, count=count)
        return _entries(entries)

    def events_since(
        self, door: str, last_id: str = "0-0", count: int = 100
    ) -> list[tuple[str, bytes]]:
        """A door's events after stream id ``last_id``, oldest first: what a
        lock replays after a reconnect (then it subscribes to the channel)."""
        with _translated("events_since"):
            entries = self.client.xrange(keys.door_stream(door), min=f"({last_id}", count=count)
        return _entries(entries)

    # --- enrolment replies ------------------------------------------------------------

    def push_reply(self, upload_id: str, payload: bytes | str, ttl_s: int = 300) -> None:
        """Hand an enrolment result to the CLI waiting on ``upload_id``."""
        name = keys.reply_key(upload_id)
        with _translated("push_reply"):
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(name, payload)
            pipe.expire(name, ttl_s)
            pipe.execute()

    def wait_reply(self, upload_id: str, timeout_s: float) -> bytes | None:
        """Block up to ``timeout_s`` for the reply; ``None`` on timeout."""
        name = keys.reply_key(upload_id)
        deadline = time.monotonic() + timeout_s
        while True:
            # short BLPOP rounds stay under the client's socket timeout
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with _translated("wait_reply"):
                got: Any = self.client.blpop([name], timeout=min(left, 2.0))
            if got is not None:
                return bytes(got[1])


__all__ = ["FORMAT_VERSION", "Claim", "Probe", "RedisStore"]
