"""The door decision, as a pure function (no I/O, no clock, no randomness).

:func:`decide` takes what the matcher gathered (the door's policy, the
request, the probe encodings, the gallery, the time) and returns a
:class:`Verdict`. The rules, checked in this order, first match wins:

1. no policy for the door -> ``DENY unknown_door``;
2. the upload is stale: written more than ``deadline_s`` ago, or more than
   ``clock_skew_s`` in the future -> ``DENY timeout``;
3. an earlier stage denied it (``unclaimed`` from ingest, ``bad_image``
   from the encoder...) -> ``DENY`` with that reason;
3b. no written-at stamp at all: its freshness cannot be shown ->
   ``DENY timeout`` (after 3 so that a message the encoder could not read,
   denied with ``internal_error`` and no stamps, keeps that reason);
4. no face -> ``DENY no_face``; more than one -> ``DENY several_faces``
   (one person per passage: a second face could be someone tailgating);
5. probe and gallery of different dimensions -> ``DENY internal_error``;
6. ``verify`` doors (1:1 against the claimed badge):

   - no badge -> ``DENY unknown_person``: a verify door needs a claim, and
     a face with no claim is treated like a claim of nobody known;
   - badge not enrolled -> ``DENY unknown_person``;
   - badge not allowed at this door -> ``DENY not_allowed_here``;
   - distance to the badge's templates not under the threshold ->
     ``DENY below_threshold``; otherwise ``OPEN granted``.

7. ``identify`` doors (1:K, no badge needed; a badge, if sent, is ignored):
   the probe is identified against *everyone enrolled*, not only the
   people allowed here, so a known person who is not allowed is named as
   such instead of being matched to the nearest allowed look-alike. The
   threshold is the door's fixed one, or (``threshold is None``, the
   default) the one :mod:`facegate.core.calibration` computes for the
   door's target stranger acceptance per approach (``stranger_rate``), its
   ``frames`` per approach and the templates of the people allowed there
   (:func:`door_threshold`): it moves as people are enrolled and revoked.

   - nobody under the threshold, or the runner-up person closer than
     ``margin`` behind the best -> ``DENY unknown_person``;
   - the identified person is not allowed here -> ``DENY not_allowed_here``;
   - otherwise ``OPEN granted``.

"Allowed" is :func:`facegate.core.access.admission`: ``allowed`` (any time;
``"*"``: everyone enrolled) or an access ``rule`` naming the person or one of
their groups, within its weekly windows if it has some; a person whom only
rules with closed windows name -> ``DENY outside_schedule`` (in place of
``not_allowed_here``, same step). A distance is
"under the threshold" when ``distance < threshold`` (as in
:mod:`facegate.core.matching`).

Why staleness comes before the other stages' reasons: age is a property of
the photo, known without looking at it, and it is what a late upload must be
told whatever else happened to it. In particular an upload whose claim had
expired by the time ingest heard of it (ingest was down, the store retried
late, the reconciler found it) is ``timeout``, not ``unclaimed``: claims
outlive their URL by more than the deadline plus the allowed skew
(``services/ingest``), so a claim can only have expired for an upload that
is stale anyway.

The written-at stamp is ``stamps["uploaded"]``: when the object store wrote
the object (its event time or the object's own timestamp, set by ingest),
never when a service first heard of it. The encoder's early skip uses the
same :func:`is_stale`.

A frame of an approach is decided by exactly these rules, like any upload:
a stale frame is ``DENY timeout``, an unclaimed one ``DENY unclaimed``
(whatever the face). Whether a frame's verdict reaches the door is the
approach's rule (:func:`facegate.adapters.recording.frame_status`): only an
``OPEN`` verdict can, so such a frame never opens; it is recorded, audited,
as a frame of its approach, and its DENY can be what the approach's closing
DENY reports. Its window counts from :func:`approach_start`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from facegate.core.access import (
    EVERYONE,
    GroupsOf,
    ever_admitted,
)
from facegate.core.calibration import identify_threshold
from facegate.core.door_policy import MAX_FRAMES, UTC, DoorMode, DoorPolicy
from facegate.core.live_gallery import LiveGallery
from facegate.core.matching import Gallery, IdentifyResult, identify, verify
from facegate.core.messages import Decision, MatchRequest, Reason

AnyGallery = Gallery | LiveGallery
"""What a verdict is decided against: an immutable gallery, or the matcher's live one."""

WRITTEN_STAMP = "uploaded"
"""The stamp holding when the object store wrote the upload (unix seconds)."""


@dataclass(frozen=True)
class Verdict:
    """What :func:`decide` concluded. ``person`` is the granted person, the
    claimed badge (verify doors) or the identified person who is not allowed;
    ``distance`` is the best distance computed, ``None`` when none was."""

    decision: Decision
    reason: Reason
    person: str | None = None
    distance: float | None = None

    def __post_init__(self) -> None:
        if (self.decision is Decision.OPEN) != (self.reason is Reason.GRANTED):
            raise ValueError(f"{self.decision} does not go with {self.reason}")
        if self.distance is not None and not math.isfinite(self.distance):
            object.__setattr__(self, "distance", None)

    @classmethod
    def deny(
        cls, reason: Reason, person: str | None = None, distance: float | None = None
    ) -> Verdict:
        return cls(Decision.DENY, reason, person, distance)

    @property
    def granted(self) -> bool:
        return self.decision is Decision.OPEN


def allowed_template_counts(
    policy: DoorPolicy, gallery: AnyGallery, groups_of: GroupsOf | None = None
) -> list[int]:
    """Templates of each enrolled person the door lets in at some time."""
    if isinstance(gallery, LiveGallery):
        if EVERYONE in policy.allowed:
            return [c for c in map(gallery.count_of, gallery.people) if c]
        names = admitted_names(policy, gallery.people, groups_of)
        return [c for c in map(gallery.count_of, names) if c]
    counts = gallery.counts
    if EVERYONE in policy.allowed:
        return [int(c) for c in counts]
    return [
        int(counts[i])
        for i, name in enumerate(gallery.people)
        if ever_admitted(policy.allowed, policy.rules, name, groups_of)
    ]


def admitted_names(
    policy: DoorPolicy, people: Iterable[str], groups_of: GroupsOf | None = None
) -> list[str]:
    """Of ``people``, those the door lets in at some time (``allowed`` or a rule)."""
    if not policy.rules:
        return [p for p in people if p in policy.allowed]
    return [p for p in people if ever_admitted(policy.allowed, policy.rules, p, groups_of)]


def allowed_template_total(
    policy: DoorPolicy, gallery: AnyGallery, groups_of: GroupsOf | None = None
) -> int:
    """Templates of everyone the door lets in at some time (O(1) for an
    everyone-door of a live gallery, O(allowed people) for a door without
    rules, O(enrolled people) for one with rules: callers cache it)."""
    if isinstance(gallery, LiveGallery):
        if EVERYONE in policy.allowed:
            return gallery.template_count
        if not policy.rules:
            return gallery.templates_total(policy.allowed)
        return gallery.templates_total(admitted_names(policy, gallery.people, groups_of))
    return sum(allowed_template_counts(policy, gallery, groups_of))


def door_threshold(
    policy: DoorPolicy,
    gallery: AnyGallery,
    *,
    default_threshold: float = 0.6,
    groups_of: GroupsOf | None = None,
) -> float:
    """The threshold in force at ``policy``'s door with this gallery: the
    fixed one, or the calibrated one (identify doors without a fixed one)."""
    if policy.threshold is not None:
        return policy.threshold
    if policy.mode is DoorMode.VERIFY:
        return default_threshold
    return identify_threshold(
        allowed_template_total(policy, gallery, groups_of),
        people=1,
        frames=policy.frames,
        target=policy.stranger_rate,
    )


def written_at(stamps: Mapping[str, float]) -> float | None:
    """When the object was written (``stamps["uploaded"]``), ``None`` when absent."""
    value = stamps.get(WRITTEN_STAMP)
    return float(value) if value is not None and math.isfinite(value) else None


def is_stale(
    stamps: Mapping[str, float], now: float, deadline_s: float, clock_skew_s: float = 0.0
) -> bool:
    """True when an access upload may not be decided on its face any more:
    written more than ``deadline_s`` before ``now``, written more than
    ``clock_skew_s`` after ``now`` (the store's clock is ahead by more than
    allowed: its age cannot be trusted), or with no written-at stamp."""
    written = written_at(stamps)
    if written is None:
        return True
    return now - written > deadline_s or written - now > clock_skew_s


def approach_start(stamps: Mapping[str, float], now: float) -> float:
    """When the window of the approach a frame opens counts from: the
    frame's written-at, but never later than ``now`` (a store clock ahead,
    or a forged stamp, cannot stretch an approach's window into the
    future), and ``now`` for a frame without one. The store keeps the
    earliest start any frame of the approach proposed."""
    written = written_at(stamps)
    return now if written is None else min(written, now)


def decide(
    policy: DoorPolicy | None,
    request: MatchRequest,
    probe: npt.ArrayLike,
    gallery: AnyGallery,
    now: float,
    *,
    deadline_s: float | None = None,
    threshold: float | None = None,
    clock_skew_s: float = 0.0,
    tz: ZoneInfo = UTC,
    groups_of: GroupsOf | None = None,
) -> Verdict:
    """The verdict for one upload (see the module docstring for the rules).

    ``probe`` holds the encodings of the faces found, ``(k, d)``; ``k`` is
    taken from it (``request.faces`` is what the encoder said and should
    agree). ``deadline_s=None`` disables the freshness rules. ``threshold``:
    the door's threshold when the caller has it already (the matcher
    caches :func:`door_threshold` per gallery version); computed otherwise.
    ``tz``: the zone of the doors' schedules; ``groups_of``: a person's
    groups (asked only when a group rule could decide).
    """
    if policy is None:
        return Verdict.deny(Reason.UNKNOWN_DOOR)
    written = written_at(request.stamps)
    if (
        deadline_s is not None
        and written is not None
        and is_stale(request.stamps, now, deadline_s, clock_skew_s)
    ):
        return Verdict.deny(Reason.TIMEOUT)
    if request.error is not None:
        return Verdict.deny(request.error)
    if deadline_s is not None and written is None:
        return Verdict.deny(Reason.TIMEOUT)
    faces = np.asarray(probe, dtype=np.float32)
    if faces.ndim == 1 and faces.size == 0:
        faces = faces.reshape(0, gallery.dim)
    if faces.ndim != 2:
        return Verdict.deny(Reason.INTERNAL_ERROR)
    if faces.shape[0] == 0:
        return Verdict.deny(Reason.NO_FACE)
    if faces.shape[0] > 1:
        return Verdict.deny(Reason.SEVERAL_FACES)
    if faces.shape[1] != gallery.dim or not np.all(np.isfinite(faces)):
        return Verdict.deny(Reason.INTERNAL_ERROR)
    face = faces[0]

    if policy.mode is DoorMode.VERIFY:
        badge = request.badge
        if badge is None or badge not in gallery:
            return Verdict.deny(Reason.UNKNOWN_PERSON, person=badge)
        refused = policy.admission(badge, now, tz, groups_of)
        if refused is not None:
            return Verdict.deny(refused, person=badge)
        limit = threshold if threshold is not None else door_threshold(policy, gallery)
        result = verify(face, gallery.templates_of(badge), limit)
        if not result.matched:
            return Verdict.deny(Reason.BELOW_THRESHOLD, person=badge, distance=result.distance)
        return Verdict(Decision.OPEN, Reason.GRANTED, badge, result.distance)

    if len(gallery) == 0:
        return Verdict.deny(Reason.UNKNOWN_PERSON)
    if threshold is None:
        threshold = door_threshold(policy, gallery, groups_of=groups_of)
    found = _identify(face, gallery, threshold, policy.margin)
    if not found.matched or found.person is None:
        return Verdict.deny(Reason.UNKNOWN_PERSON, distance=found.distance)
    refused = policy.admission(found.person, now, tz, groups_of)
    if refused is not None:
        return Verdict.deny(refused, person=found.person, distance=found.distance)
    return Verdict(Decision.OPEN, Reason.GRANTED, found.person, found.distance)


def _identify(
    face: npt.ArrayLike, gallery: AnyGallery, limit: float, margin: float
) -> IdentifyResult:
    if isinstance(gallery, LiveGallery):
        return gallery.identify(face, limit, margin=margin)
    return identify(face, gallery, limit, margin=margin)


__all__ = [
    "EVERYONE",
    "MAX_FRAMES",
    "WRITTEN_STAMP",
    "AnyGallery",
    "DoorMode",
    "DoorPolicy",
    "GroupsOf",
    "Verdict",
    "admitted_names",
    "allowed_template_counts",
    "allowed_template_total",
    "approach_start",
    "decide",
    "door_threshold",
    "is_stale",
    "written_at",
]
