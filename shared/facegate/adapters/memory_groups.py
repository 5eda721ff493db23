"""Access groups in memory (a part of :class:`~facegate.adapters.memory_store.MemoryStore`;
the same contract as :mod:`facegate.adapters.redis_groups`)."""

from __future__ import annotations

import threading

from facegate.adapters.store import ChangeKind
from facegate.core import keys
from facegate.core.errors import BadMessageError


class MemoryGroups:
    """Groups and memberships; mixed into ``MemoryStore``."""

    _cond: threading.Condition
    _groups: dict[str, set[str]]

    def _check(self) -> None: ...  # provided by MemoryStore

    def _change(self, kind: ChangeKind, name: str) -> None: ...  # provided by MemoryStore

    def add_group(self, group: str) -> bool:
        keys.check_name(group, "group")
        with self._cond:
            self._check()
            if group in self._groups:
                return False
            self._groups[group] = set()
            return True

    def delete_group(self, group: str) -> bool:
        keys.check_name(group, "group")
        with self._cond:
            self._check()
            self._change(ChangeKind.GROUP, group)
            return self._groups.pop(group, None) is not None

    def list_groups(self) -> list[str]:
        with self._cond:
            self._check()
            return sorted(self._groups)

    def group_members(self, group: str) -> list[str]:
        keys.check_name(group, "group")
        with self._cond:
            self._check()
            return sorted(self._groups.get(group, ()))

    def add_member(self, group: str, person: str) -> bool:
        keys.check_name(group, "group")
        keys.check_person(person)
        with self._cond:
            self._check()
            members = self._groups.get(group)
            if members is None:
                raise BadMessageError(f"no group {group!r} (create it first)")
            self._change(ChangeKind.GROUP, group)
            added = person not in members
            members.add(person)
            return added

    def remove_member(self, group: str, person: str) -> bool:
        keys.check_name(group, "group")
        keys.check_person(person)
        with self._cond:
            self._check()
            self._change(ChangeKind.GROUP, group)
            members = self._groups.get(group, set())
            removed = person in members
            members.discard(person)
            return removed

    def groups_of(self, person: str) -> list[str]:
        keys.check_person(person)
        with self._cond:
            self._check()
            return sorted(g for g, members in self._groups.items() if person in members)

    def _drop_memberships(self, person: str) -> None:
        with self._cond:
            held = [m for m in self._groups.values() if person in m]
            for members in held:
                members.discard(person)
            if held:
                self._change(ChangeKind.GROUP, person)


__all__ = ["MemoryGroups"]
