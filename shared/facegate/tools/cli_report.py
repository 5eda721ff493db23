"""What doors promise, for the command line: ``facegate doors list`` and the
advice ``facegate enroll`` prints (how many photos a person has, what one
more would buy at each door that lets them in).

The figures come from :mod:`facegate.core.door_report` over the people
enrolled now (``templates_snapshot``), so they follow every enrolment and
revocation as the matchers' thresholds do.
"""

from __future__ import annotations

from typing import Any

from facegate.core.access import ever_admitted
from facegate.core.door_report import DoorReport, door_report, one_more_photo
from facegate.core.policy import DoorMode, DoorPolicy


def _pct(rate: float) -> str:
    if rate >= 0.01 or rate == 0.0:
        return f"{100 * rate:.1f}%"
    return f"{100 * rate:.2g}%"


def report_lines(policy: DoorPolicy, report: DoorReport) -> list[str]:
    """The lines ``doors list`` prints for one door."""
    allowed = ", ".join(sorted(policy.allowed)) or "-"
    head = f"{policy.door:<12} {policy.mode.value:<9} allowed {allowed}"
    if report.calibrated:
        how = (
            f"calibrated for {_pct(policy.stranger_rate)} strangers per approach, "
            f"{report.people} people, {report.templates} templates, {report.frames} frame(s)"
        )
    else:
        how = "fixed"
    who = "strangers" if policy.mode is DoorMode.IDENTIFY else "impostors holding a badge"
    lines = [
        head,
        f"    threshold {report.threshold:.4f} ({how}), margin {policy.margin:g}",
        f"    {who} let in: about {_pct(report.stranger_rate)} per approach (estimated"
        + (", below what the engine's table measured)" if report.extrapolated else ")"),
        f"    residents let in: about {_pct(report.resident_rate)} per frame "
        f"({report.resident_source})",
    ]
    if policy.rules:
        lines += [f"    rule: {rule}" for rule in policy.rules]
    if report.warning:
        lines.append(f"    WARNING: {report.warning}")
    return lines


def doors_list_lines(store: Any, env: dict[str, str]) -> list[str]:
    """``facegate doors list``: every door with what it promises."""
    doors = store.list_doors()
    if not doors:
        return ["no doors configured (facegate doors add DOOR ...)"]
    _, people = store.templates_snapshot()
    default = _default_threshold(env)
    lines: list[str] = []
    for door in doors:
        policy = store.get_door(door, default_threshold=default)
        if policy is not None:
            report = door_report(
                policy, people, default_threshold=default, groups_of=store.groups_of
            )
            lines += report_lines(policy, report)
    return lines


def _default_threshold(env: dict[str, str]) -> float:
    from facegate.core.errors import ConfigError

    try:
        from services.matcher.settings import MatcherSettings
    except ImportError:  # the base install always has it; be lenient
        return 0.6
    try:
        return float(MatcherSettings.from_env(env).threshold)
    except ConfigError:
        return 0.6


def enrol_advice(store: Any, person: str, env: dict[str, str]) -> list[str]:
    """Photos ``person`` has and, per door that lets them in, the share of
    their frames it lets in now and with one more photo."""
    _, people = store.templates_snapshot()
    if person not in people:
        return []
    default = _default_threshold(env)
    lines = []
    for door in store.list_doors():
        policy = store.get_door(door, default_threshold=default)
        if policy is None or not ever_admitted(
            policy.allowed, policy.rules, person, store.groups_of
        ):
            continue
        have, now, more = one_more_photo(policy, people, person, default_threshold=default)
        lines.append(
            f"  at {door}: a resident with {have} photo(s) is let in about {_pct(now)} of the "
            f"time; with one more photo about {_pct(more)}"
        )
    return lines
