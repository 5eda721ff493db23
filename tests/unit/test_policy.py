"""The door decision: every reason, on synthetic encodings (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.core.errors import BadMessageError
from facegate.core.matching import Gallery
from facegate.core.messages import Decision, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy, Verdict, approach_start, decide

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
UID = "0123456789abcdef0123456789abcdef"


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


@pytest.fixture
def people() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {name: unit(rng.normal(size=128)) for name in ("alice", "bob", "carol")}


@pytest.fixture
def gallery(people: dict[str, np.ndarray]) -> Gallery:
    return Gallery.from_mapping({n: v[None, :] for n, v in people.items()})


def near(v: np.ndarray, d: float, seed: int = 1) -> np.ndarray:
    """A vector at distance exactly ``d`` from ``v``."""
    rng = np.random.default_rng(seed)
    step = rng.normal(size=v.shape)
    step -= step.dot(v) * v
    step /= np.linalg.norm(step)
    return (v + d * step).astype(np.float32)


def request(badge: str | None = "alice", **over: object) -> MatchRequest:
    fields: dict[str, object] = {
        "upload_id": UID,
        "door": "front",
        "camera": "cam",
        "badge": badge,
        "faces": 1,
        "stamps": {"uploaded": NOW - 0.5},
    }
    fields.update(over)
    return MatchRequest(**fields)  # type: ignore[arg-type]


VERIFY = DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice", "bob"}), 0.6)
IDENTIFY = DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"alice", "bob"}), 0.6, 0.1)


def run(
    policy: DoorPolicy | None, req: MatchRequest, probe: np.ndarray, gallery: Gallery
) -> Verdict:
    return decide(policy, req, probe, gallery, NOW, deadline_s=10.0)


def test_verify_granted(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    v = run(VERIFY, request(), near(people["alice"], 0.3)[None], gallery)
    assert (v.decision, v.reason, v.person) == (Decision.OPEN, Reason.GRANTED, "alice")
    assert v.distance == pytest.approx(0.3, abs=1e-4)


def test_verify_below_threshold(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    v = run(VERIFY, request(), near(people["alice"], 0.65)[None], gallery)
    assert (v.decision, v.reason, v.person) == (Decision.DENY, Reason.BELOW_THRESHOLD, "alice")
    assert v.distance == pytest.approx(0.65, abs=1e-4)
    # bob's face with alice's badge
    v = run(VERIFY, request(), people["bob"][None], gallery)
    assert v.reason is Reason.BELOW_THRESHOLD


def test_threshold_is_strict(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    tight = DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice"}), 0.3)
    assert run(tight, request(), near(people["alice"], 0.29)[None], gallery).granted
    assert not run(tight, request(), near(people["alice"], 0.31)[None], gallery).granted


def test_verify_unknown_and_missing_badge(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    probe = people["alice"][None]
    assert run(VERIFY, request("dave"), probe, gallery).reason is Reason.UNKNOWN_PERSON
    v = run(VERIFY, request(None), probe, gallery)
    assert (v.decision, v.reason) == (Decision.DENY, Reason.UNKNOWN_PERSON)


def test_verify_not_allowed_here(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    v = run(VERIFY, request("carol"), people["carol"][None], gallery)
    assert (v.decision, v.reason, v.person) == (Decision.DENY, Reason.NOT_ALLOWED_HERE, "carol")


def test_identify_granted(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    v = run(IDENTIFY, request(None), near(people["bob"], 0.2)[None], gallery)
    assert (v.decision, v.reason, v.person) == (Decision.OPEN, Reason.GRANTED, "bob")
    # a badge is ignored on identify doors
    assert run(IDENTIFY, request("alice"), near(people["bob"], 0.2)[None], gallery).person == "bob"


def test_identify_unknown_person(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    stranger = unit(np.random.default_rng(99).normal(size=128))[None]
    v = run(IDENTIFY, request(None), stranger, gallery)
    assert (v.decision, v.reason, v.person) == (Decision.DENY, Reason.UNKNOWN_PERSON, None)
    assert v.distance is not None and v.distance > 0.6


def test_identify_margin_fails(people: dict[str, np.ndarray]) -> None:
    a = people["alice"]
    twin = near(a, 0.1, seed=5)
    g = Gallery.from_mapping({"alice": a[None], "bob": twin[None]})
    probe = ((a + twin) / 2)[None]
    v = run(IDENTIFY, request(None), probe, g)
    assert v.reason is Reason.UNKNOWN_PERSON
    relaxed = DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"alice", "bob"}), 0.6, 0.0)
    assert run(relaxed, request(None), probe, g).granted


def test_identify_not_allowed_here(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    v = run(IDENTIFY, request(None), near(people["carol"], 0.1)[None], gallery)
    assert (v.decision, v.reason, v.person) == (Decision.DENY, Reason.NOT_ALLOWED_HERE, "carol")


def test_identify_everyone(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    open_door = DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"*"}), 0.6)
    assert run(open_door, request(None), people["carol"][None], gallery).person == "carol"


def test_identify_empty_gallery(people: dict[str, np.ndarray]) -> None:
    v = run(IDENTIFY, request(None), people["alice"][None], Gallery.empty(128))
    assert v.reason is Reason.UNKNOWN_PERSON


def test_unknown_door(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    v = run(None, request(), people["alice"][None], gallery)
    assert (v.decision, v.reason) == (Decision.DENY, Reason.UNKNOWN_DOOR)


@pytest.mark.parametrize("error", [Reason.BAD_IMAGE, Reason.INTERNAL_ERROR, Reason.NO_FACE])
def test_encoder_error_passes_through(
    error: Reason, people: dict[str, np.ndarray], gallery: Gallery
) -> None:
    v = run(VERIFY, request(error=error, faces=0), np.zeros((0, 128), np.float32), gallery)
    assert (v.decision, v.reason) == (Decision.DENY, error)


def test_no_face_and_several_faces(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    empty = np.zeros((0, 128), np.float32)
    assert run(VERIFY, request(faces=0), empty, gallery).reason is Reason.NO_FACE
    two = np.stack([people["alice"], people["bob"]])
    assert run(VERIFY, request(faces=2), two, gallery).reason is Reason.SEVERAL_FACES
    assert run(IDENTIFY, request(faces=2), two, gallery).reason is Reason.SEVERAL_FACES


def test_timeout(people: dict[str, np.ndarray], gallery: Gallery) -> None:
    late = request(stamps={"uploaded": NOW - 10.5, "ingested": NOW - 9.0})
    v = run(VERIFY, late, people["alice"][None], gallery)
    assert (v.decision, v.reason) == (Decision.DENY, Reason.TIMEOUT)
    on_time = request(stamps={"uploaded": NOW - 9.0})
    assert run(VERIFY, on_time, people["alice"][None], gallery).granted
    assert decide(VERIFY, late, people["alice"][None], gallery, NOW).granted  # no deadline
    # only the written-at stamp counts: a recent `ingested` does not make an old photo fresh
    replayed = request(stamps={"uploaded": NOW - 60.0, "ingested": NOW - 0.1})
    assert run(VERIFY, replayed, people["alice"][None], gallery).reason is Reason.TIMEOUT
    # no written-at at all: freshness cannot be shown
    unknown_age = request(stamps={"ingested": NOW - 0.1})
    assert run(VERIFY, unknown_age, people["alice"][None], gallery).reason is Reason.TIMEOUT


def test_a_written_at_in_the_future_is_bounded_by_the_skew(
    people: dict[str, np.ndarray], gallery: Gallery
) -> None:
    probe = people["alice"][None]
    ahead = request(stamps={"uploaded": NOW + 1.5})
    assert decide(VERIFY, ahead, probe, gallery, NOW, deadline_s=10.0, clock_skew_s=2.0).granted
    far = request(stamps={"uploaded": NOW + 2.5})
    v = decide(VERIFY, far, probe, gallery, NOW, deadline_s=10.0, clock_skew_s=2.0)
    assert v.reason is Reason.TIMEOUT


@pytest.mark.parametrize("error", [Reason.UNCLAIMED, Reason.BAD_IMAGE, Reason.INTERNAL_ERROR])
def test_a_stale_upload_is_timeout_whatever_the_earlier_stages_said(
    gallery: Gallery, error: Reason
) -> None:
    """Rule order: unknown door, then stale, then the earlier stage's reason."""
    empty = np.zeros((0, 128), np.float32)
    stale = request(error=error, faces=0, stamps={"uploaded": NOW - 11.0})
    assert run(IDENTIFY, stale, empty, gallery).reason is Reason.TIMEOUT
    fresh = request(error=error, faces=0)
    assert run(IDENTIFY, fresh, empty, gallery).reason is error
    assert run(None, stale, empty, gallery).reason is Reason.UNKNOWN_DOOR
    # no written-at at all (an unreadable message denied upstream): its own reason
    unstamped = request(error=error, faces=0, stamps={})
    assert run(IDENTIFY, unstamped, empty, gallery).reason is error


def test_unclaimed_never_opens_even_with_an_enrolled_face(
    people: dict[str, np.ndarray], gallery: Gallery
) -> None:
    for policy in (VERIFY, IDENTIFY):
        v = run(policy, request(error=Reason.UNCLAIMED), people["alice"][None], gallery)
        assert (v.decision, v.reason) == (Decision.DENY, Reason.UNCLAIMED)


def test_freshness_comes_first_at_a_calibrated_door(
    people: dict[str, np.ndarray], gallery: Gallery
) -> None:
    """An identify door without a fixed threshold (calibrated for its
    gallery, issue 11) applies the same freshness rules before any face."""
    calibrated = DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"*"}), frames=3)
    probe = people["alice"][None]
    assert run(calibrated, request(badge=None), probe, gallery).granted
    for stamps in ({"uploaded": NOW - 11.0}, {"uploaded": NOW + 60.0}, {"ingested": NOW}):
        v = run(calibrated, request(badge=None, stamps=stamps), probe, gallery)
        assert (v.decision, v.reason) == (Decision.DENY, Reason.TIMEOUT)


def test_an_approach_window_starts_at_the_written_at_never_in_the_future() -> None:
    assert approach_start({"uploaded": NOW - 1.5, "ingested": NOW}, NOW) == NOW - 1.5
    assert approach_start({"uploaded": NOW + 30.0}, NOW) == NOW  # a store clock ahead
    assert approach_start({"ingested": NOW - 5.0}, NOW) == NOW  # no written-at: from now
    assert approach_start({"uploaded": float("nan")}, NOW) == NOW


def test_dimension_mismatch_is_internal_error(gallery: Gallery) -> None:
    v = run(VERIFY, request(), np.ones((1, 64), np.float32), gallery)
    assert v.reason is Reason.INTERNAL_ERROR
    nan = np.full((1, 128), np.nan, np.float32)
    assert run(VERIFY, request(), nan, gallery).reason is Reason.INTERNAL_ERROR


def test_policy_fields_round_trip() -> None:
    back = DoorPolicy.from_fields("front", IDENTIFY.to_fields())
    assert back == IDENTIFY
    defaulted = DoorPolicy.from_fields(
        "front", {"mode": "verify", "allowed": '["alice"]'}, default_threshold=0.5
    )
    assert (defaulted.threshold, defaulted.margin, defaulted.allowed) == (
        0.5,
        0.0,
        frozenset({"alice"}),
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "open-sesame", "allowed": "[]"},
        {"mode": "verify", "allowed": "{}"},
        {"mode": "verify", "allowed": "not json"},
        {"mode": "verify", "allowed": "[]", "threshold": "x"},
        {"mode": "verify", "allowed": "[]", "threshold": "3"},
        {"mode": "verify", "allowed": '["bad name"]'},
    ],
)
def test_malformed_policy_refused(fields: dict[str, str]) -> None:
    with pytest.raises(BadMessageError):
        DoorPolicy.from_fields("front", fields)


def test_verdict_consistency() -> None:
    with pytest.raises(ValueError):
        Verdict(Decision.OPEN, Reason.NO_FACE)
    assert Verdict.deny(Reason.UNKNOWN_PERSON, distance=float("inf")).distance is None
