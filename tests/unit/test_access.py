"""Access rules: people and groups at a door, at any time or on weekly windows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from facegate.core.access import AccessRule, RuleKind, admission, rules_from_text, with_rule
from facegate.core.errors import BadMessageError
from facegate.core.matching import Gallery
from facegate.core.messages import Decision, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy, allowed_template_counts, decide
from facegate.core.schedule import Schedule, zone

pytestmark = pytest.mark.unit

UTC_ZONE = zone("UTC")
BERLIN = zone("Europe/Berlin")
WED_NOON = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
SAT_NOON = datetime(2026, 3, 7, 12, 0, tzinfo=UTC).timestamp()
UID = "0123456789abcdef0123456789abcdef"
OFFICE = Schedule.parse("mon-fri 07:00-19:00")

STAFF = AccessRule(RuleKind.GROUP, "staff", OFFICE)
GUARDS = AccessRule(RuleKind.GROUP, "guards")
DAVE = AccessRule(RuleKind.PERSON, "dave", Schedule.parse("sat 10:00-14:00"))

GROUPS = {"erin": ["staff"], "frank": ["staff", "guards"], "dave": []}


def groups_of(person: str) -> list[str]:
    return GROUPS.get(person, [])


def admit(person: str, now: float, *rules: AccessRule, allowed: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    return admission(allowed, rules, person, now, UTC_ZONE, groups_of)


def test_admission_rules() -> None:
    rules = (STAFF, GUARDS, DAVE)
    assert admit("erin", WED_NOON, *rules) is None  # staff, in office hours
    assert admit("erin", SAT_NOON, *rules) is Reason.OUTSIDE_SCHEDULE
    assert admit("frank", SAT_NOON, *rules) is None  # a guard at any time
    assert admit("dave", SAT_NOON, *rules) is None and admit("dave", WED_NOON, *rules) is (
        Reason.OUTSIDE_SCHEDULE
    )
    assert admit("mallory", WED_NOON, *rules) is Reason.NOT_ALLOWED_HERE
    # `allowed` is at any time, and "*" is everyone, with or without rules
    assert admit("erin", SAT_NOON, *rules, allowed=frozenset({"erin"})) is None
    assert admit("mallory", SAT_NOON, allowed=frozenset({"*"})) is None


def test_groups_are_looked_up_only_when_a_group_rule_could_decide() -> None:
    asked: list[str] = []

    def counting(person: str) -> list[str]:
        asked.append(person)
        return groups_of(person)

    assert admission(frozenset({"erin"}), (STAFF,), "erin", SAT_NOON, UTC_ZONE, counting) is None
    assert admission(frozenset(), (DAVE,), "dave", SAT_NOON, UTC_ZONE, counting) is None
    assert asked == []
    assert admission(frozenset(), (STAFF,), "erin", WED_NOON, UTC_ZONE, counting) is None
    assert asked == ["erin"]


def test_rules_round_trip_through_the_door_fields() -> None:
    policy = DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice"}), 0.5, rules=(STAFF, DAVE))
    fields = policy.to_fields()
    assert rules_from_text(fields["rules"]) == (STAFF, DAVE)
    assert DoorPolicy.from_fields("front", fields) == policy
    assert "rules" not in DoorPolicy("front", DoorMode.VERIFY, frozenset()).to_fields()
    assert with_rule((STAFF, DAVE), AccessRule(RuleKind.GROUP, "staff")) == (
        DAVE,
        AccessRule(RuleKind.GROUP, "staff"),
    )


@pytest.mark.parametrize(
    "raw",
    ['{"group": "staff"}', '[{"group": "st aff"}]', '[{"person": "a", "group": "b"}]',
     '[{"group": "staff", "schedule": "funday"}]', "[1]", "not json"],
)  # fmt: skip
def test_malformed_rules_make_the_policy_malformed(raw: str) -> None:
    with pytest.raises(BadMessageError):
        DoorPolicy.from_fields("front", {"mode": "verify", "allowed": "[]", "rules": raw})


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


@pytest.fixture
def faces() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {n: unit(rng.normal(size=128)) for n in ("erin", "frank", "dave", "mallory")}


def request(badge: str | None, now: float) -> MatchRequest:
    return MatchRequest(
        upload_id=UID, door="front", camera="c", badge=badge, faces=1, stamps={"uploaded": now}
    )


@pytest.mark.parametrize("mode", [DoorMode.VERIFY, DoorMode.IDENTIFY])
def test_decide_applies_schedules_at_both_kinds_of_door(
    mode: DoorMode, faces: dict[str, np.ndarray]
) -> None:
    gallery = Gallery.from_mapping({n: v[None, :] for n, v in faces.items()})
    policy = DoorPolicy("front", mode, frozenset(), 0.6, 0.0, rules=(STAFF, GUARDS))

    def run(person: str, now: float):  # type: ignore[no-untyped-def]
        badge = person if mode is DoorMode.VERIFY else None
        return decide(policy, request(badge, now), faces[person][None, :], gallery, now,
                      deadline_s=10.0, tz=UTC_ZONE, groups_of=groups_of)  # fmt: skip

    v = run("erin", WED_NOON)
    assert (v.decision, v.reason, v.person) == (Decision.OPEN, Reason.GRANTED, "erin")
    v = run("erin", SAT_NOON)
    assert (v.decision, v.reason, v.person) == (Decision.DENY, Reason.OUTSIDE_SCHEDULE, "erin")
    v = run("mallory", WED_NOON)
    assert (v.decision, v.reason, v.person) == (Decision.DENY, Reason.NOT_ALLOWED_HERE, "mallory")
    assert run("frank", SAT_NOON).decision is Decision.OPEN
    # the building's zone decides: 06:30 UTC on a winter wednesday is 07:30 in Berlin
    early = datetime(2026, 3, 4, 6, 30, tzinfo=UTC).timestamp()
    assert run("erin", early).reason is Reason.OUTSIDE_SCHEDULE
    berlin = decide(policy, request("erin" if mode is DoorMode.VERIFY else None, early),
                    faces["erin"][None, :], gallery, early, deadline_s=10.0, tz=BERLIN,
                    groups_of=groups_of)  # fmt: skip
    assert berlin.reason is Reason.GRANTED


def test_calibration_counts_everyone_a_rule_lets_in_at_some_time(
    faces: dict[str, np.ndarray],
) -> None:
    gallery = Gallery.from_mapping({n: np.stack([v, v]) for n, v in faces.items()})
    policy = DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"mallory"}), rules=(STAFF, DAVE))
    # mallory (allowed), erin + frank (staff), dave (his own rule): 4 people, 2 templates each
    assert sorted(allowed_template_counts(policy, gallery, groups_of)) == [2, 2, 2, 2]
    assert allowed_template_counts(policy, gallery) == [2, 2]  # without memberships: dave, mallory
