"""Who may pass a door when: access rules over people and groups (pure).

A door's policy (:class:`facegate.core.policy.DoorPolicy`) has two lists:

- ``allowed``: people let in at any time (``"*"``: everyone enrolled), as
  before groups existed;
- ``rules``: :class:`AccessRule` s, each naming one person or one group and
  optionally a weekly :class:`~facegate.core.schedule.Schedule` on the
  building's wall clock.

:func:`admission` says whether a person may pass at an instant:

1. in ``allowed`` -> yes;
2. a rule names the person, or a group the person belongs to, and has no
   schedule or a window open now -> yes;
3. some rule names them but every such window is closed -> ``DENY
   outside_schedule``;
4. otherwise -> ``DENY not_allowed_here``.

Group memberships are looked up only when a group rule could decide
(``groups_of``, called at most once per decision).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from facegate.core.errors import BadMessageError
from facegate.core.ids import is_name, is_person
from facegate.core.messages import Reason
from facegate.core.schedule import Schedule

EVERYONE = "*"

GroupsOf = Callable[[str], Iterable[str]]
"""A person's groups (the store's ``groups_of``)."""


class RuleKind(StrEnum):
    PERSON = "person"
    GROUP = "group"


def check_group(name: str) -> str:
    """``name`` when it is a valid group id ([A-Za-z0-9_-]{1,64}), else BadMessageError."""
    if not (isinstance(name, str) and is_name(name)):
        raise BadMessageError(f"invalid group name {name!r}: use [A-Za-z0-9_-]{{1,64}}")
    return name


@dataclass(frozen=True)
class AccessRule:
    """One person or one group, at all times or within ``schedule``."""

    kind: RuleKind
    name: str
    schedule: Schedule | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RuleKind(self.kind))
        if self.kind is RuleKind.GROUP:
            check_group(self.name)
        elif not is_person(self.name):
            raise BadMessageError(f"invalid person name {self.name!r}")

    def names(self, person: str, groups: frozenset[str]) -> bool:
        """The rule is about ``person`` (directly or through ``groups``)."""
        if self.kind is RuleKind.PERSON:
            return self.name == person
        return self.name in groups

    def open_at(self, now: float, tz: ZoneInfo) -> bool:
        return self.schedule is None or self.schedule.contains_ts(now, tz)

    def to_json(self) -> dict[str, str]:
        out = {self.kind.value: self.name}
        if self.schedule is not None:
            out["schedule"] = str(self.schedule)
        return out

    @classmethod
    def from_json(cls, data: object) -> AccessRule:
        if not isinstance(data, dict) or len(set(data) & {"person", "group"}) != 1:
            raise BadMessageError(f"bad access rule {data!r}")
        kind = RuleKind.PERSON if "person" in data else RuleKind.GROUP
        schedule = data.get("schedule")
        return cls(kind, data[kind.value], None if schedule is None else Schedule.parse(schedule))

    def __str__(self) -> str:
        when = f" {self.schedule}" if self.schedule is not None else " (any time)"
        return f"{self.kind.value} {self.name}:{when}"


def rules_to_text(rules: Iterable[AccessRule]) -> str:
    """The JSON list kept in a door's ``rules`` field."""
    return json.dumps([r.to_json() for r in rules], separators=(",", ":"))


def rules_from_text(text: str) -> tuple[AccessRule, ...]:
    """Parse a door's ``rules`` field; BadMessageError when malformed."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadMessageError(f"rules are not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise BadMessageError("rules must be a JSON list")
    return tuple(AccessRule.from_json(item) for item in data)


def with_rule(rules: Iterable[AccessRule], rule: AccessRule) -> tuple[AccessRule, ...]:
    """``rules`` with ``rule`` replacing any rule about the same person or group."""
    kept = [r for r in rules if (r.kind, r.name) != (rule.kind, rule.name)]
    return (*kept, rule)


def without(rules: Iterable[AccessRule], kind: RuleKind, name: str) -> tuple[AccessRule, ...]:
    return tuple(r for r in rules if (r.kind, r.name) != (RuleKind(kind), name))


def admission(
    allowed: frozenset[str],
    rules: Iterable[AccessRule],
    person: str,
    now: float,
    tz: ZoneInfo,
    groups_of: GroupsOf | None = None,
) -> Reason | None:
    """``None`` when ``person`` may pass at unix time ``now``, else the
    reason to deny (see the module docstring)."""
    if EVERYONE in allowed or person in allowed:
        return None
    rules = tuple(rules)
    groups: frozenset[str] = frozenset()
    if groups_of is not None and any(r.kind is RuleKind.GROUP for r in rules):
        groups = frozenset(groups_of(person))
    naming = [r for r in rules if r.names(person, groups)]
    if not naming:
        return Reason.NOT_ALLOWED_HERE
    if any(r.open_at(now, tz) for r in naming):
        return None
    return Reason.OUTSIDE_SCHEDULE


def ever_admitted(
    allowed: frozenset[str],
    rules: Iterable[AccessRule],
    person: str,
    groups_of: GroupsOf | None = None,
) -> bool:
    """Whether some rule (or ``allowed``) lets ``person`` in at some time:
    whom a calibrated door's threshold is computed for."""
    if EVERYONE in allowed or person in allowed:
        return True
    rules = tuple(rules)
    groups: frozenset[str] = frozenset()
    if groups_of is not None and any(r.kind is RuleKind.GROUP for r in rules):
        groups = frozenset(groups_of(person))
    return any(r.names(person, groups) for r in rules)


__all__ = [
    "AccessRule",
    "GroupsOf",
    "RuleKind",
    "admission",
    "check_group",
    "ever_admitted",
    "rules_from_text",
    "rules_to_text",
    "with_rule",
    "without",
]
