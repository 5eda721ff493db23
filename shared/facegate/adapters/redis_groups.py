"""Access groups in Redis (a part of :class:`~facegate.adapters.redis_store.RedisStore`).

::

    facegate:groups                set     group names
    facegate:group:<group>         set     its members (person names)
    facegate:groups_of:<person>    set     the person's groups (reverse index)

Both directions change together in one Lua script, and every change
appends a ``group`` record to the gallery change stream with the next
gallery version (:data:`facegate.adapters.redis_codec.CHANGE_LUA`): a
membership can change who a door lets in and a calibrated door's
threshold. Which groups a door admits, and when, is in the door's policy
(``rules``; :mod:`facegate.core.access`).
"""

from __future__ import annotations

from typing import Any, Final

import redis

from facegate.adapters.redis_codec import CHANGE_LUA, text, translated
from facegate.core import keys
from facegate.core.errors import BadMessageError

# Every script: the last two KEYS are the gallery version and the change
# stream, ARGV[1] the stream's length cap.
ADD_MEMBER_LUA: Final = CHANGE_LUA + """
-- KEYS: groups set, group set, person's groups; ARGV: maxlen, group, person
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return -1 end
change(KEYS[4], KEYS[5], ARGV[1], 'group', ARGV[2])
local added = redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
return added
"""

REMOVE_MEMBER_LUA: Final = CHANGE_LUA + """
-- KEYS: group set, person's groups; ARGV: maxlen, group, person
change(KEYS[3], KEYS[4], ARGV[1], 'group', ARGV[2])
local removed = redis.call('SREM', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[2])
return removed
"""

DELETE_GROUP_LUA: Final = CHANGE_LUA + """
-- KEYS: groups set, group set; ARGV: maxlen, group, prefix of the reverse index
change(KEYS[3], KEYS[4], ARGV[1], 'group', ARGV[2])
local existed = redis.call('SREM', KEYS[1], ARGV[2])
for _, person in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('SREM', ARGV[3] .. person, ARGV[2])
end
redis.call('DEL', KEYS[2])
return existed
"""

DROP_PERSON_LUA: Final = CHANGE_LUA + """
-- KEYS: person's groups; ARGV: maxlen, person, prefix of the group sets
local groups = redis.call('SMEMBERS', KEYS[1])
if #groups == 0 then return 0 end
change(KEYS[2], KEYS[3], ARGV[1], 'group', ARGV[2])
for _, group in ipairs(groups) do
  redis.call('SREM', ARGV[3] .. group, ARGV[2])
end
redis.call('DEL', KEYS[1])
return #groups
"""

_TAIL: Final = [keys.GALLERY_VERSION, keys.GALLERY_CHANGES]
_GROUP_PREFIX = keys.group_key("x")[:-1]
_REVERSE_PREFIX = keys.person_groups_key("x")[:-1]


def _names(raw: Any) -> list[str]:
    return sorted(str(text(n)) for n in raw)


class RedisGroups:
    """Groups and memberships; mixed into ``RedisStore``."""

    client: redis.Redis
    changes_maxlen: int

    def _register_group_scripts(self) -> None:
        self._add_member = self.client.register_script(ADD_MEMBER_LUA)
        self._remove_member = self.client.register_script(REMOVE_MEMBER_LUA)
        self._delete_group = self.client.register_script(DELETE_GROUP_LUA)
        self._drop_person = self.client.register_script(DROP_PERSON_LUA)

    def add_group(self, group: str) -> bool:
        """Create ``group``; ``False`` when it existed already."""
        keys.check_name(group, "group")
        with translated("add_group"):
            return bool(self.client.sadd(keys.GROUPS, group))

    def delete_group(self, group: str) -> bool:
        """Remove ``group`` and every membership in it; ``False`` when unknown."""
        name = keys.group_key(group)
        with translated("delete_group"):
            existed = self._delete_group(
                keys=[keys.GROUPS, name, *_TAIL],
                args=[self.changes_maxlen, group, _REVERSE_PREFIX],
            )
        return bool(existed)

    def list_groups(self) -> list[str]:
        with translated("list_groups"):
            return _names(self.client.smembers(keys.GROUPS))

    def group_members(self, group: str) -> list[str]:
        name = keys.group_key(group)
        with translated("group_members"):
            return _names(self.client.smembers(name))

    def add_member(self, group: str, person: str) -> bool:
        """Put ``person`` in ``group`` (BadMessageError when there is no such
        group); ``False`` when they were in it already."""
        args = [keys.GROUPS, keys.group_key(group), keys.person_groups_key(person)]
        with translated("add_member"):
            added = int(
                self._add_member(keys=[*args, *_TAIL], args=[self.changes_maxlen, group, person])
            )
        if added < 0:
            raise BadMessageError(f"no group {group!r} (create it first)")
        return added == 1

    def remove_member(self, group: str, person: str) -> bool:
        """Take ``person`` out of ``group``; ``False`` when they were not in it."""
        args = [keys.group_key(group), keys.person_groups_key(person), *_TAIL]
        with translated("remove_member"):
            return bool(
                self._remove_member(keys=args, args=[self.changes_maxlen, group, person])
            )

    def groups_of(self, person: str) -> list[str]:
        """The groups ``person`` is in."""
        name = keys.person_groups_key(person)
        with translated("groups_of"):
            return _names(self.client.smembers(name))

    def _drop_memberships(self, person: str) -> None:
        name = keys.person_groups_key(person)
        with translated("remove_person"):
            self._drop_person(
                keys=[name, *_TAIL], args=[self.changes_maxlen, person, _GROUP_PREFIX]
            )


__all__ = ["RedisGroups"]
