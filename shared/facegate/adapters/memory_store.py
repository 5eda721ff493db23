"""An in-memory :class:`~facegate.adapters.store.Store`: the fake the
services' unit tests run on.

It keeps the behaviour that matters to the callers, checked by the same
contract tests as :class:`~facegate.adapters.redis_store.RedisStore`
(``tests/store_contract.py``): ids validated as key names are, probes,
claims, replies and decisions expire after their TTL (on an injectable
clock), a person's templates stay of one model, the gallery version moves on
every enrol, revoke and door change (each with its change record, capped
at ``changes_maxlen``), a decision is recorded once per upload
and then appended to the door's stream (at the id it was signed with, above
the stream's last id) and the audit stream (ids ``<ms>-<seq>``, capped) and
"published" (kept in :attr:`published` and handed to :attr:`subscribers`);
the frames of approaches and their closing DENYs follow the same rules
(:mod:`facegate.adapters.memory_approaches`), and every door event goes
through the same :mod:`facegate.adapters.recording` algorithm as in Redis,
``_xadd_at`` playing the Lua scripts' ``xadd_at``. ``available = False`` makes every call raise
:class:`~facegate.core.errors.RedisUnavailableError`, as an unreachable
Redis would. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.adapters.memory_approaches import MemoryApproaches
from facegate.adapters.memory_claims import MemoryIngestState
from facegate.adapters.memory_groups import MemoryGroups
from facegate.adapters.recording import ALREADY, RECORDED, TAKEN
from facegate.adapters.store import (
    DEFAULT_CHANGES_MAXLEN,
    DEFAULT_DECISION_TTL_S,
    F32,
    Change,
    ChangeKind,
    GalleryChanges,
    Probe,
    Recorded,
    Signer,
    StoredPerson,
    StreamEntry,
    as_rows,
    check_same_model,
    probe_rows,
    record_signed,
)
from facegate.core import keys
from facegate.core.audit import AdminAction
from facegate.core.errors import RedisUnavailableError
from facegate.core.ids import stream_id_key
from facegate.core.messages import DoorEvent
from facegate.core.policy import DoorPolicy


class MemoryStore(MemoryIngestState, MemoryApproaches, MemoryGroups):
    """Every store interface in one process's memory (the approaches' part
    in :mod:`facegate.adapters.memory_approaches`, claims and the
    reconciler's state in :mod:`facegate.adapters.memory_claims`)."""

    def __init__(
        self,
        *,
        stream_maxlen: int = 10_000,
        decision_ttl_s: int = DEFAULT_DECISION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        changes_maxlen: int = DEFAULT_CHANGES_MAXLEN,
    ) -> None:
        self.stream_maxlen = stream_maxlen
        self.changes_maxlen = changes_maxlen
        self.decision_ttl_s = decision_ttl_s
        self.clock = clock
        self.available = True
        self.published: list[tuple[str, bytes]] = []
        """``(channel, wire)`` of every publish, in order."""
        self.subscribers: list[Callable[[str, bytes], None]] = []
        self._cond = threading.Condition()
        self._expiring: dict[str, tuple[Any, float]] = {}
        self._version = 0
        self._changes: list[Change] = []
        """The change records (the last ``changes_maxlen``), oldest first."""
        self._people: dict[str, tuple[str, dict[str, F32]]] = {}
        self._doors: dict[str, DoorPolicy] = {}
        self._groups: dict[str, set[str]] = {}
        self._key_versions: dict[str, int] = {}
        self._streams: dict[str, list[StreamEntry]] = {}
        self._last_ids: dict[str, str] = {}
        """The last id each door stream gave (as Redis's last-generated-id)."""
        self._cursors: dict[str, str] = {}
        self._last_ms = 0
        self._seq = 0

    # --- plumbing -------------------------------------------------------------------

    def _check(self) -> None:
        if not self.available:
            raise RedisUnavailableError("memory store: unavailable (as set by the test)")

    def _get(self, name: str) -> Any:
        entry = self._expiring.get(name)
        if entry is None:
            return None
        value, expires = entry
        if self.clock() >= expires:
            del self._expiring[name]
            return None
        return value

    def _put(self, name: str, value: Any, ttl_s: float) -> None:
        self._expiring[name] = (value, self.clock() + ttl_s)

    def _stream_id(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self._last_ms:
            ms, self._seq = self._last_ms, self._seq + 1
        else:
            self._seq = 0
        self._last_ms = ms
        return f"{ms}-{self._seq}"

    @staticmethod
    def _id_key(stream_id: str) -> tuple[int, int]:
        ms, _, seq = stream_id.partition("-")
        return int(ms), int(seq or 0)

    def ping(self) -> bool:
        self._check()
        return True

    def close(self) -> None:
        pass

    # --- probes -----------------------------------------------------------------------

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
        rows = probe_rows(encodings, dim)
        if boxes is not None and len(boxes) != rows.shape[0]:
            raise ValueError("one box per face")
        probe = Probe(model_id, rows.copy(), tuple(dict(b) for b in boxes or ()))
        with self._cond:
            self._check()
            self._put(keys.probe_key(upload_id), probe, ttl_s)

    def get_probe(self, upload_id: str) -> Probe | None:
        with self._cond:
            self._check()
            probe: Probe | None = self._get(keys.probe_key(upload_id))
        return probe

    def delete_probe(self, upload_id: str) -> None:
        with self._cond:
            self._check()
            self._expiring.pop(keys.probe_key(upload_id), None)

    # --- people and templates ------------------------------------------------------------

    def _change(self, kind: ChangeKind, name: str) -> None:
        """The next version and its record, with the write (under ``_cond``)."""
        self._version += 1
        self._changes.append(Change(self._version, kind, name))
        del self._changes[: max(0, len(self._changes) - self.changes_maxlen)]

    def gallery_version(self) -> int:
        with self._cond:
            self._check()
            return self._version

    def gallery_changes(self, after: int, limit: int = 1000) -> GalleryChanges:
        with self._cond:
            self._check()
            newer = [c for c in self._changes if c.version > after][: max(limit, 0)]
            return GalleryChanges(self._version, tuple(newer))

    def stored_people(self, people: Sequence[str]) -> dict[str, StoredPerson | None]:
        out: dict[str, StoredPerson | None] = {}
        with self._cond:
            self._check()
            for name in people:
                stored = self._people.get(name)
                if stored is None or not stored[1]:
                    out[name] = None
                    continue
                model, templates = stored
                out[name] = StoredPerson(model, np.stack([templates[t] for t in sorted(templates)]))
        return out

    def add_templates(self, person: str, encodings: npt.ArrayLike, model_id: str) -> list[str]:
        rows = as_rows(encodings, f"templates of {person}")
        keys.check_person(person)
        with self._cond:
            self._check()
            stored = self._people.get(person)
            if stored is not None:
                model, templates = stored
                dim = next(iter(templates.values())).shape[0] if templates else None
                check_same_model(person, model, dim, model_id, rows.shape[1])
            ids = [keys.new_upload_id()[:16] for _ in range(rows.shape[0])]
            templates = dict(stored[1]) if stored else {}
            templates.update({tid: row.copy() for tid, row in zip(ids, rows, strict=True)})
            self._people[person] = (model_id, templates)
            self._change(ChangeKind.PERSON, person)
        return ids

    def remove_person(self, person: str) -> bool:
        keys.check_person(person)
        with self._cond:
            self._check()
            self._drop_memberships(person)
            self._change(ChangeKind.PERSON, person)
            return self._people.pop(person, None) is not None

    def people(self) -> list[str]:
        with self._cond:
            self._check()
            return sorted(self._people)

    def templates_snapshot(self, model_id: str | None = None) -> tuple[int, dict[str, F32]]:
        with self._cond:
            self._check()
            out = {
                name: np.stack([templates[t] for t in sorted(templates)])
                for name, (model, templates) in self._people.items()
                if templates and (model_id is None or model == model_id)
            }
            return self._version, out

    # --- doors --------------------------------------------------------------------------

    def set_door(self, policy: DoorPolicy) -> None:
        with self._cond:
            self._check()
            self._doors[policy.door] = policy
            self._change(ChangeKind.DOOR, policy.door)

    def get_door(
        self, door: str, *, default_threshold: float = 0.6, default_margin: float = 0.0
    ) -> DoorPolicy | None:
        keys.check_door(door)
        with self._cond:
            self._check()
            return self._doors.get(door)

    def list_doors(self) -> list[str]:
        with self._cond:
            self._check()
            return sorted(self._doors)

    def delete_door(self, door: str) -> bool:
        keys.check_door(door)
        with self._cond:
            self._check()
            self._change(ChangeKind.DOOR, door)
            return self._doors.pop(door, None) is not None

    def door_key_version(self, door: str) -> int:
        keys.check_door(door)
        with self._cond:
            self._check()
            return self._key_versions.get(door, 1)

    def rotate_door_key(self, door: str) -> int:
        keys.check_door(door)
        with self._cond:
            self._check()
            version = self._key_versions.get(door, 1) + 1
            self._key_versions[door] = version
            self._change(ChangeKind.DOOR, door)
            return version

    # --- decisions -------------------------------------------------------------------------

    def _append(self, stream: str, entry: bytes, stream_id: str | None = None) -> None:
        entries = self._streams.setdefault(stream, [])
        entries.append((stream_id or self._stream_id(), entry))
        del entries[: max(0, len(entries) - self.stream_maxlen)]

    def record_decision(self, event: DoorEvent, sign: Signer) -> Recorded | None:
        return record_signed(event, sign, self._record_once)

    def _xadd_at(self, stream: str, stream_id: str, wire: bytes) -> str | None:
        """Append ``wire`` to a door stream at exactly ``stream_id`` (as
        ``xadd_at`` in the Redis scripts): ``None`` when done, else the
        stream's last id (it is at or past ``stream_id``). Under ``_cond``."""
        last = self._last_ids.get(stream, "0-0")
        if stream_id_key(stream_id) <= stream_id_key(last):
            return last
        self._last_ids[stream] = stream_id
        self._append(stream, wire, stream_id)
        return None

    def _record_once(self, event: DoorEvent, wire: bytes) -> tuple[int, str]:
        assert event.stream_id is not None
        name = keys.decision_key(event.upload_id)
        channel = keys.door_channel(event.door)
        with self._cond:
            self._check()
            if self._get(name) is not None:
                return ALREADY, ""
            taken = self._xadd_at(keys.door_stream(event.door), event.stream_id, bytes(wire))
            if taken is not None:
                return TAKEN, taken
            self._put(name, bytes(wire), self.decision_ttl_s)
            self._append(keys.AUDIT_STREAM, bytes(wire))
            self.published.append((channel, bytes(wire)))
            subscribers = list(self.subscribers)
        for deliver in subscribers:
            deliver(channel, bytes(wire))
        return RECORDED, event.stream_id

    def get_decision(self, upload_id: str) -> bytes | None:
        with self._cond:
            self._check()
            wire: bytes | None = self._get(keys.decision_key(upload_id))
            return wire

    def read_log(self, door: str | None = None, count: int = 20) -> list[StreamEntry]:
        stream = keys.AUDIT_STREAM if door is None else keys.door_stream(door)
        with self._cond:
            self._check()
            return list(reversed(self._streams.get(stream, [])[-count:])) if count > 0 else []

    def events_since(self, door: str, last_id: str = "0-0", count: int = 100) -> list[StreamEntry]:
        after = self._id_key(last_id)
        with self._cond:
            self._check()
            entries = self._streams.get(keys.door_stream(door), [])
            return [e for e in entries if self._id_key(e[0]) > after][:count]

    # --- admin records (the audit stream's other kind) ---------------------------------

    def record_admin(self, action: AdminAction) -> str:
        with self._cond:
            self._check()
            admin: list[tuple[str, AdminAction]] = self.__dict__.setdefault("_admin", [])
            sid = f"{int(action.at * 1000)}-{len(admin)}"
            admin.append((sid, action))
            return sid

    def admin_actions(self, count: int = 20) -> list[tuple[str, AdminAction]]:
        with self._cond:
            self._check()
            admin: list[tuple[str, AdminAction]] = self.__dict__.get("_admin", [])
            return list(reversed(admin[-count:])) if count > 0 else []

    # --- enrolment replies ---------------------------------------------------------------------

    def push_reply(self, upload_id: str, payload: bytes | str, ttl_s: int = 300) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        name = keys.reply_key(upload_id)
        with self._cond:
            self._check()
            queued: list[bytes] = self._get(name) or []
            self._put(name, [*queued, data], ttl_s)
            self._cond.notify_all()

    def wait_reply(self, upload_id: str, timeout_s: float) -> bytes | None:
        name = keys.reply_key(upload_id)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                self._check()
                queued: list[bytes] | None = self._get(name)
                if queued:
                    first, rest = queued[0], queued[1:]
                    if rest:
                        self._expiring[name] = (rest, self._expiring[name][1])
                    else:
                        del self._expiring[name]
                    return first
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


__all__ = ["MemoryStore"]
