"""Administrative actions as audit records: who did what, to what, when.

Every change an operator makes (a door added or edited, a person enrolled
or revoked, a threshold moved, an operator account created), from the
command line or the console, becomes one :class:`AdminAction` in the audit
stream beside the door decisions (:mod:`facegate.adapters.redis_audit`
writes it; the console's Log page shows both kinds). The record is flat
text fields, so it reads the same in ``redis-cli XRANGE`` as on the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from facegate.core.errors import BadMessageError

KIND_FIELD: Final = "kind"
ADMIN_KIND: Final = "admin"
"""The ``kind`` field of an admin record in the audit stream (decisions have none)."""

MAX_DETAIL_CHARS: Final = 2000


class Action(StrEnum):
    DOOR_SET = "door_set"
    DOOR_ALLOW = "door_allow"
    DOOR_DISALLOW = "door_disallow"
    DOOR_REMOVE = "door_remove"
    DOOR_KEY_ROTATE = "door_key_rotate"
    THRESHOLD_SET = "threshold_set"
    ENROL = "enrol"
    ENROL_REFUSED = "enrol_refused"
    REVOKE = "revoke"
    OPERATOR_ADD = "operator_add"
    GROUP_ADD = "group_add"
    GROUP_REMOVE = "group_remove"
    GROUP_MEMBERS_ADD = "group_members_add"
    GROUP_MEMBERS_REMOVE = "group_members_remove"


@dataclass(frozen=True)
class AdminAction:
    """One administrative change. ``actor`` names who made it (``console:NAME``,
    ``cli:USER``); ``target`` what it changed (a door, a person, an operator)."""

    actor: str
    action: Action
    target: str
    at: float
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.actor or len(self.actor) > 200:
            raise BadMessageError(f"audit: bad actor {self.actor!r}")
        if len(self.target) > 200:
            raise BadMessageError("audit: target too long")
        if not (isinstance(self.at, float | int) and math.isfinite(self.at)):
            raise BadMessageError(f"audit: bad time {self.at!r}")

    def to_fields(self) -> dict[str, str]:
        detail = json.dumps(dict(self.detail), sort_keys=True)
        if len(detail) > MAX_DETAIL_CHARS:
            detail = json.dumps({"truncated": detail[: MAX_DETAIL_CHARS - 40]})
        return {
            KIND_FIELD: ADMIN_KIND,
            "actor": self.actor,
            "action": self.action.value,
            "target": self.target,
            "at": repr(float(self.at)),
            "detail": detail,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> AdminAction:
        try:
            detail = json.loads(fields.get("detail") or "{}")
            if not isinstance(detail, dict):
                raise ValueError("detail is not an object")
            return cls(
                actor=fields["actor"],
                action=Action(fields["action"]),
                target=fields.get("target", ""),
                at=float(fields["at"]),
                detail={str(k): str(v) for k, v in detail.items()},
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise BadMessageError(f"audit: malformed admin record ({exc})") from exc

    def describe(self) -> str:
        """One line for a page or a terminal."""
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return f"{self.action.value} {self.target}" + (f" ({extra})" if extra else "")


__all__ = ["ADMIN_KIND", "KIND_FIELD", "Action", "AdminAction"]
