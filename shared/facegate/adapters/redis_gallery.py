"""The people-and-doors half of :class:`~facegate.adapters.redis_store.RedisStore`:
templates, door policies, the gallery version and its change stream.

Every write that changes what a matcher decides with (enrol, revoke, set or
delete a door; a key rotation in :mod:`facegate.adapters.redis_events`) is
one Lua script that appends a change record to ``facegate:gallery:changes``
(entry id ``<new version>-0``, fields ``kind`` and ``name``), sets the
version and then writes (``CHANGE_LUA`` in
:mod:`facegate.adapters.redis_codec`). Redis runs a script atomically, so a
reader never sees a write without its record or a version without its
write, and versions have no gaps. The stream is capped (``MAXLEN ~``); a
reader whose next record was trimmed away reloads everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import redis

from facegate.adapters.redis_codec import (
    CHANGE_LUA,
    FORMAT_VERSION,
    decode_templates,
    text,
    translated,
)
from facegate.adapters.store import (
    Change,
    ChangeKind,
    GalleryChanges,
    StoredPerson,
    as_rows,
    check_same_model,
)
from facegate.core import keys
from facegate.core.errors import BadMessageError, RedisUnavailableError
from facegate.core.policy import DoorPolicy

ADD_TEMPLATES_LUA: Final = CHANGE_LUA + """
-- KEYS: person hash, people set, gallery version, change stream
-- ARGV: maxlen, person, model, dim, then field, value pairs of the hash
-- -> {1, version}; {0, stored model, stored dim}: another model's templates
local stored = redis.call('HMGET', KEYS[1], 'model', 'dim')
if stored[1] and (stored[1] ~= ARGV[3] or stored[2] ~= ARGV[4]) then
  return {0, stored[1], stored[2] or ''}
end
local v = change(KEYS[3], KEYS[4], ARGV[1], 'person', ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('SADD', KEYS[2], ARGV[2])
return {1, v}
"""

REMOVE_LUA: Final = CHANGE_LUA + """
-- KEYS: the hash, its set, gallery version, change stream
-- ARGV: maxlen, kind, name -> whether anything was there
change(KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3])
local deleted = redis.call('DEL', KEYS[1])
local removed = redis.call('SREM', KEYS[2], ARGV[3])
return deleted + removed
"""

SET_DOOR_LUA: Final = CHANGE_LUA + """
-- KEYS: door hash, doors set, gallery version, change stream
-- ARGV: maxlen, door, then field, value pairs of the policy
change(KEYS[3], KEYS[4], ARGV[1], 'door', ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

_TAIL: Final = [keys.GALLERY_VERSION, keys.GALLERY_CHANGES]


class RedisGallery:
    """Mixed into ``RedisStore``, which sets these attributes."""

    client: redis.Redis
    changes_maxlen: int

    def _register_gallery_scripts(self) -> None:
        self._add_templates = self.client.register_script(ADD_TEMPLATES_LUA)
        self._remove = self.client.register_script(REMOVE_LUA)
        self._set_door = self.client.register_script(SET_DOOR_LUA)

    # --- version and changes ------------------------------------------------------

    def gallery_version(self) -> int:
        """The counter bumped on every enrol, revoke and door change."""
        with translated("gallery_version"):
            value = self.client.get(keys.GALLERY_VERSION)
        return int(value) if value is not None else 0  # type: ignore[arg-type]

    def gallery_changes(self, after: int, limit: int = 1000) -> GalleryChanges:
        """The version and the records after ``after`` (one transaction)."""
        with translated("gallery_changes"):
            pipe = self.client.pipeline(transaction=True)
            pipe.get(keys.GALLERY_VERSION)
            pipe.xrange(keys.GALLERY_CHANGES, min=f"{max(after, 0) + 1}-0", count=limit)
            version, entries = pipe.execute()
        out = []
        for sid, fields in entries:
            try:
                number = int(str(text(sid)).partition("-")[0])
                kind = ChangeKind(str(text(fields[b"kind"])))
                name = str(text(fields[b"name"]))
            except (KeyError, ValueError) as exc:
                raise BadMessageError(f"malformed change record {sid!r}") from exc
            out.append(Change(number, kind, name))
        return GalleryChanges(int(version or 0), tuple(out))

    def stored_people(self, people: Sequence[str]) -> dict[str, StoredPerson | None]:
        """The current templates of each of ``people`` (one transaction)."""
        names = list(dict.fromkeys(people))
        with translated("stored_people"):
            pipe = self.client.pipeline(transaction=True)
            for name in names:
                pipe.hgetall(keys.person_key(name))
            hashes = pipe.execute()
        out: dict[str, StoredPerson | None] = {}
        for name, raw in zip(names, hashes, strict=True):
            rows = decode_templates(name, raw, None)
            model = text(raw.get(b"model")) if raw else None
            out[name] = StoredPerson(model, rows) if rows is not None and model else None
        return out

    # --- people and templates -------------------------------------------------

    def add_templates(self, person: str, encodings: npt.ArrayLike, model_id: str) -> list[str]:
        """Add templates ``(k, d)`` to ``person`` (created when new); returns
        the new template ids. A person's templates must all come from one
        model: other models raise BadMessageError."""
        rows = as_rows(encodings, f"templates of {person}")
        key = keys.person_key(person)
        ids = [keys.new_upload_id()[:16] for _ in range(rows.shape[0])]
        args: list[bytes | str | int] = [self.changes_maxlen, person, model_id, rows.shape[1]]
        args += ["model", model_id, "dim", rows.shape[1], "version", FORMAT_VERSION]
        for tid, row in zip(ids, rows, strict=True):
            args += [f"enc:{tid}", row.tobytes()]
        with translated("add_templates"):
            answer: Any = self._add_templates(keys=[key, keys.PEOPLE, *_TAIL], args=args)
        if int(answer[0]) == 0:
            stored_dim = text(answer[2])
            check_same_model(
                person, text(answer[1]), int(stored_dim) if stored_dim else None,
                model_id, rows.shape[1],
            )
            raise BadMessageError(f"{person}: stored templates refused {model_id!r}")
        return ids

    def remove_person(self, person: str) -> bool:
        """Revoke ``person`` (all templates); ``False`` when not enrolled."""
        key = keys.person_key(person)
        with translated("remove_person"):
            gone = self._remove(
                keys=[key, keys.PEOPLE, *_TAIL], args=[self.changes_maxlen, "person", person]
            )
        return bool(int(gone))

    def people(self) -> list[str]:
        with translated("people"):
            names = self.client.smembers(keys.PEOPLE)
        return sorted(str(text(n)) for n in names)  # type: ignore[union-attr]

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
            with translated("templates_snapshot"):
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.hgetall(keys.person_key(name))
                pipe.get(keys.GALLERY_VERSION)
                *hashes, after = pipe.execute()
            if int(after or 0) != version:
                continue
            out: dict[str, npt.NDArray[np.float32]] = {}
            for name, raw in zip(names, hashes, strict=True):
                rows = decode_templates(name, raw, model_id)
                if rows is not None:
                    out[name] = rows
            return version, out
        raise RedisUnavailableError("gallery kept changing while being read; try again")

    # --- doors ------------------------------------------------------------------

    def set_door(self, policy: DoorPolicy) -> None:
        """Create or replace a door's policy."""
        key = keys.door_config_key(policy.door)
        args: list[str | int] = [self.changes_maxlen, policy.door]
        for field, value in policy.to_fields().items():
            args += [field, value]
        with translated("set_door"):
            self._set_door(keys=[key, keys.DOORS, *_TAIL], args=args)

    def get_door(
        self, door: str, *, default_threshold: float = 0.6, default_margin: float = 0.0
    ) -> DoorPolicy | None:
        """The door's policy, ``None`` when the door is not configured."""
        with translated("get_door"):
            raw = self.client.hgetall(keys.door_config_key(door))
        if not raw:
            return None
        fields = {str(text(k)): str(text(v)) for k, v in raw.items()}  # type: ignore[union-attr]
        return DoorPolicy.from_fields(
            door, fields, default_threshold=default_threshold, default_margin=default_margin
        )

    def list_doors(self) -> list[str]:
        with translated("list_doors"):
            names = self.client.smembers(keys.DOORS)
        return sorted(str(text(n)) for n in names)  # type: ignore[union-attr]

    def delete_door(self, door: str) -> bool:
        key = keys.door_config_key(door)
        with translated("delete_door"):
            gone = self._remove(
                keys=[key, keys.DOORS, *_TAIL], args=[self.changes_maxlen, "door", door]
            )
        return bool(int(gone))


__all__ = ["ADD_TEMPLATES_LUA", "REMOVE_LUA", "SET_DOOR_LUA", "RedisGallery"]
