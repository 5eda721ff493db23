"""The administrative parts of the state store (re-exported by
:mod:`facegate.adapters.store`): access groups, and the admin records of
the audit stream."""

from __future__ import annotations

from typing import Protocol

from facegate.core.audit import AdminAction


class GroupStore(Protocol):
    """Access groups (``facegate.core.access``): each change appends a
    ``group`` record to the gallery change stream."""

    def add_group(self, group: str) -> bool:
        """Create a group; ``False`` when it existed."""

    def delete_group(self, group: str) -> bool:
        """Remove a group and its memberships; ``False`` when unknown."""

    def list_groups(self) -> list[str]: ...

    def group_members(self, group: str) -> list[str]: ...

    def add_member(self, group: str, person: str) -> bool:
        """BadMessageError for an unknown group; ``False`` when already a member."""

    def remove_member(self, group: str, person: str) -> bool: ...

    def groups_of(self, person: str) -> list[str]:
        """The person's groups (``remove_person`` drops them all)."""


class AuditStore(Protocol):
    def record_admin(self, action: AdminAction) -> str:
        """Append an administrative change to the audit stream; its id."""

    def admin_actions(self, count: int = 20) -> list[tuple[str, AdminAction]]:
        """The newest ``count`` admin records, newest first."""


__all__ = ["AuditStore", "GroupStore"]
