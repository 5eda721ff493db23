"""What a door can promise, in numbers (pure; read by ``facegate doors list``,
``facegate enroll`` and the demo).

For a door and the people enrolled (their templates), :func:`door_report`
gives the threshold in force (calibrated or fixed), the estimated share of
strangers' approaches let in (identify doors: compared with everyone the
door lets in; verify doors: an impostor holding one resident's badge), and
the estimated share of residents let in per frame: from the residents' own
templates when enough of them have several (each template against the
nearest of the person's others, so with one template fewer than they have),
else from the engine's table for their typical template count. Below
:data:`~facegate.core.calibration.MIN_RESIDENT_RATE` the report carries a
warning recommending badge + face. :func:`one_more_photo` says what one
more enrolment photo would buy a resident at a door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.core.access import GroupsOf, ever_admitted
from facegate.core.calibration import (
    MIN_RESIDENT_RATE,
    DistanceModel,
    default_model,
    identify_threshold,
    resident_acceptance_from_templates,
    stranger_acceptance,
)
from facegate.core.policy import EVERYONE, DoorMode, DoorPolicy

__all__ = ["DoorReport", "door_report", "one_more_photo"]


@dataclass(frozen=True)
class DoorReport:
    door: str
    mode: DoorMode
    threshold: float
    calibrated: bool
    people: int
    """Enrolled people the door lets in."""
    templates: int
    frames: int
    stranger_rate: float
    """Estimated share of strangers' approaches let in."""
    resident_rate: float
    """Estimated share of residents' frames let in."""
    resident_source: str
    extrapolated: bool
    """The stranger estimate lies below what the engine's table measured."""

    @property
    def warning(self) -> str | None:
        if self.people and self.resident_rate < MIN_RESIDENT_RATE:
            return (
                f"residents would be let in only about {100 * self.resident_rate:.0f}% of the "
                f"time: make {self.door} a badge + face door "
                f"(facegate doors add {self.door} --mode verify)"
            )
        return None


def _allowed(
    policy: DoorPolicy,
    people: Mapping[str, npt.NDArray[np.float32]],
    groups_of: GroupsOf | None = None,
) -> list[str]:
    if EVERYONE in policy.allowed:
        return sorted(people)
    return sorted(p for p in people if ever_admitted(policy.allowed, policy.rules, p, groups_of))


def door_report(
    policy: DoorPolicy,
    people: Mapping[str, npt.NDArray[np.float32]],
    *,
    default_threshold: float = 0.6,
    model: DistanceModel | None = None,
    groups_of: GroupsOf | None = None,
) -> DoorReport:
    """The report of ``policy``'s door with ``people`` ``{name: (k, d)}``
    enrolled (``groups_of``: memberships, for doors with group rules)."""
    model = model or default_model()
    names = _allowed(policy, people, groups_of)
    counts = [int(np.atleast_2d(people[n]).shape[0]) for n in names]
    typical = int(np.median(counts)) if counts else 1
    if policy.threshold is not None:
        threshold = policy.threshold
    elif policy.mode is DoorMode.VERIFY:
        threshold = default_threshold
    else:
        threshold = identify_threshold(
            counts, frames=policy.frames, target=policy.stranger_rate, model=model
        )
    if policy.mode is DoorMode.IDENTIFY:
        strangers = stranger_acceptance(threshold, counts, frames=policy.frames, model=model)
    else:
        strangers = stranger_acceptance(
            threshold, typical, people=1, frames=policy.frames, model=model
        )
    own = resident_acceptance_from_templates({n: people[n] for n in names}, threshold)
    if own is not None:
        residents, source = own[0], f"{own[1]} enrolled photos (leave one out)"
    else:
        residents = model.resident_rate(threshold, typical)
        source = f"engine table, {typical} template(s)"
    return DoorReport(
        door=policy.door,
        mode=policy.mode,
        threshold=threshold,
        calibrated=policy.calibrated,
        people=len(names),
        templates=sum(counts),
        frames=policy.frames,
        stranger_rate=strangers,
        resident_rate=residents,
        resident_source=source,
        extrapolated=model.extrapolated(threshold),
    )


def one_more_photo(
    policy: DoorPolicy,
    people: Mapping[str, npt.NDArray[np.float32]],
    person: str,
    *,
    default_threshold: float = 0.6,
    model: DistanceModel | None = None,
) -> tuple[int, float, float]:
    """``(photos, rate now, rate with one more photo)``: the share of
    ``person``'s frames the door lets in (engine table), now and with one
    more template (the calibrated threshold moves with it)."""
    model = model or default_model()
    have = int(np.atleast_2d(people[person]).shape[0])
    now = door_report(policy, people, default_threshold=default_threshold, model=model)
    more = dict(people)
    rows = np.atleast_2d(people[person])
    more[person] = np.concatenate([rows, rows[-1:]])
    after = door_report(policy, more, default_threshold=default_threshold, model=model)
    return (
        have,
        model.resident_rate(now.threshold, have),
        model.resident_rate(after.threshold, have + 1),
    )
