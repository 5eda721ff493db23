"""Reading the console's forms into domain values (no HTTP here).

:func:`door_policy` is where a door form becomes a
:class:`~facegate.core.policy.DoorPolicy`: fields the form does not show
(stranger rate, frames; later, access groups and schedules) are carried over
from the door's current policy, so a new door field needs one more input in
``templates/door.html`` and one more line here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from facegate.core import keys
from facegate.core.access import AccessRule, RuleKind
from facegate.core.calibration import DEFAULT_MARGIN
from facegate.core.errors import BadMessageError
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.schedule import Schedule

_SPLIT = re.compile(r"[\s,]+")


class FormError(ValueError):
    """A field that does not validate (HTTP 400, message for the page)."""


def text_field(form: Mapping[str, Any], name: str, *, limit: int = 2000) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FormError(f"{name}: expected text")
    if len(value) > limit:
        raise FormError(f"{name}: too long")
    return value.strip()


def optional_float(
    form: Mapping[str, Any], name: str, *, low: float, high: float
) -> float | None:
    raw = text_field(form, name, limit=40)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise FormError(f"{name}: {raw!r} is not a number") from exc
    if not math.isfinite(value) or not low <= value <= high:
        raise FormError(f"{name}: {value:g} is outside {low:g}..{high:g}")
    return value


def people_list(raw: str) -> frozenset[str]:
    names = [n for n in _SPLIT.split(raw) if n]
    for name in names:
        if name == "*":
            continue
        try:
            keys.check_person(name)
        except BadMessageError as exc:
            raise FormError(str(exc)) from exc
    return frozenset(names)


def door_name(raw: str) -> str:
    try:
        return keys.check_door(raw)
    except BadMessageError as exc:
        raise FormError(str(exc)) from exc


def rule_lines(text: str) -> tuple[AccessRule, ...]:
    """Access rules, one per line: ``group staff: mon-fri 07:00-19:00``,
    ``person dave: fri 22:00-02:00``, ``group guards`` (any time); blank
    lines ignored. FormError naming the line otherwise."""
    rules: list[AccessRule] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        head, _, when = line.partition(":")
        kind, _, name = head.strip().partition(" ")
        when = when.strip()
        try:
            schedule = None if when in ("", "(any time)") else Schedule.parse(when)
            rules.append(AccessRule(RuleKind(kind.strip().lower()), name.strip(), schedule))
        except (ValueError, BadMessageError) as exc:
            raise FormError(
                f"access rule line {number} ({line!r}): want 'group NAME: SCHEDULE' or "
                f"'person NAME: SCHEDULE' ({exc})"
            ) from exc
    return tuple(rules)


def door_policy(
    form: Mapping[str, Any], door: str, current: DoorPolicy | None
) -> DoorPolicy:
    """The policy a door form asks for (``current``: the door as it is)."""
    mode_raw = text_field(form, "mode", limit=20) or "verify"
    try:
        mode = DoorMode(mode_raw)
    except ValueError as exc:
        raise FormError(f"mode: {mode_raw!r} is neither verify nor identify") from exc
    allowed = people_list(text_field(form, "allowed"))
    threshold = optional_float(form, "threshold", low=0.05, high=2.0)
    margin = optional_float(form, "margin", low=0.0, high=1.0)
    base = current or DoorPolicy(door, mode, frozenset())
    if "rules" in form:  # absent: the rules stay as they are
        base = replace(base, rules=rule_lines(text_field(form, "rules", limit=4000)))
    return replace(
        base,
        door=door,
        mode=mode,
        allowed=allowed,
        threshold=threshold,
        margin=margin if margin is not None else (current.margin if current else DEFAULT_MARGIN),
    )


__all__ = [
    "FormError",
    "door_name",
    "door_policy",
    "optional_float",
    "people_list",
    "rule_lines",
    "text_field",
]
