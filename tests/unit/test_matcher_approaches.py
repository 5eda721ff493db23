"""Approaches at the matcher (in-memory store): at most one OPEN per
approach, one DENY when its window closes without a pass, late and surplus
frames audited but never opening, closing by another matcher, the door
events signed with the door's current key and their stream ids (frames that
did not open are refused by a lock), and the identify threshold following
enrolments and revocations."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_store import MemoryStore
from facegate.adapters.recording import stream_id_after
from facegate.adapters.store import FrameStatus
from facegate.core import keys
from facegate.core.calibration import identify_threshold
from facegate.core.event_verify import EventRejected, ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import DoorSigner
from services.matcher.approaches import Sweeper
from services.matcher.service import MatcherService
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit

MODEL = "synthetic-128"
NOW = 1_700_000_000.0
WINDOW = 2.0


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(v: np.ndarray, d: float, seed: int = 99) -> np.ndarray:
    step = np.random.default_rng(seed).normal(size=v.shape)
    step -= step.dot(v) * v
    return (v + d * step / np.linalg.norm(step)).astype(np.float32)


@dataclass
class Door:
    store: MemoryStore
    service: MatcherService
    settings: MatcherSettings
    clock: list[float]
    alice: np.ndarray

    def frame(
        self,
        approach: str,
        probe: np.ndarray | None,
        *,
        door: str = "lobby",
        uploaded: float | None = None,
    ) -> MatchRequest:
        upload_id = keys.new_upload_id()
        faces = 0
        if probe is not None:
            self.store.put_probe(upload_id, probe[None], MODEL, ttl_s=300)
            faces = 1
        return MatchRequest(
            upload_id=upload_id,
            door=door,
            camera="cam-1",
            faces=faces,
            model_id=MODEL,
            stamps={"uploaded": self.clock[0] if uploaded is None else uploaded},
            approach=approach,
        )

    def signer(self, door: str = "lobby") -> DoorSigner:
        version = self.store.door_key_version(door)
        return DoorSigner.derive(self.settings.signing_secret.get_secret_value(), door, version)

    def door_events(self, door: str = "lobby") -> list[DoorEvent]:
        """What the lock hears: the door's stream, every entry verified
        with the door's current public key against its stream id, and the
        live copies byte-identical to the stream's."""
        key = self.signer(door).public_key
        guard = ReplayGuard()
        entries = self.store.events_since(door)
        channel = keys.door_channel(door)
        assert [w for c, w in self.store.published if c == channel] == [w for _, w in entries]
        return [
            verify_event(w, key, door, now=self.clock[0], guard=guard, stream_id=sid)
            for sid, w in entries
        ]


@pytest.fixture
def door() -> Door:
    settings = MatcherSettings.from_env(
        with_secrets(signing_secret="unit-test-secret-0123456789", approach_window_s=str(WINDOW))
    )
    store = MemoryStore()
    clock = [NOW]
    service = MatcherService(settings, store, clock=lambda: clock[0])
    alice = unit(1)
    store.add_templates("alice", np.stack([alice, near(alice, 0.1, 5)]), MODEL)
    store.add_templates("bob", unit(2)[None], MODEL)
    store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6, frames=3))
    return Door(store, service, settings, clock, alice)


def approach_id() -> str:
    return keys.new_upload_id()


def test_one_open_on_the_first_passing_frame(door: Door) -> None:
    a = approach_id()
    miss = door.service.handle(door.frame(a, unit(77)))
    hit = door.service.handle(door.frame(a, near(door.alice, 0.2)))
    again = door.service.handle(door.frame(a, near(door.alice, 0.15, 3)))
    assert (miss.frame, hit.frame, again.frame) == (
        FrameStatus.RECORDED,
        FrameStatus.OPENED,
        FrameStatus.CONCLUDED,
    )
    heard = door.door_events()
    assert [(e.decision, e.person, e.approach) for e in heard] == [(Decision.OPEN, "alice", a)]
    assert hit.event is not None and heard[0].upload_id == hit.event.upload_id
    # every frame has exactly one decision record and an audit entry
    for outcome in (miss, hit, again):
        assert outcome.event is not None
        assert door.store.get_decision(outcome.event.upload_id) is not None
    assert len(door.store.read_log(None)) == 3
    door.clock[0] += 10 * WINDOW
    assert door.service.close_due() == 0  # opened: no DENY follows
    assert len(door.door_events()) == 1


def test_one_deny_when_the_window_closes_without_a_pass(door: Door) -> None:
    a = approach_id()
    frames = [door.frame(a, unit(70 + i)) for i in range(2)] + [door.frame(a, None)]
    outcomes = [door.service.handle(f) for f in frames]
    assert all(o.frame is FrameStatus.RECORDED for o in outcomes)
    assert door.door_events() == []  # the lock hears nothing while the approach is open
    door.clock[0] += WINDOW - 0.1
    assert door.service.close_due() == 0
    door.clock[0] += 0.2
    assert door.service.close_due() == 1
    assert door.service.close_due() == 0
    (deny,) = door.door_events()
    assert (deny.decision, deny.reason, deny.approach) == (Decision.DENY, Reason.UNKNOWN_PERSON, a)
    closest = min(
        (o.event for o in outcomes if o.event and o.event.distance is not None),
        key=lambda e: e.distance or 0.0,
    )
    assert deny.upload_id == closest.upload_id and deny.distance == closest.distance
    assert len(door.store.read_log(None)) == 4  # three frames and the closing DENY


def test_a_late_frame_cannot_open_and_its_pass_closes_the_approach(door: Door) -> None:
    a = approach_id()
    door.service.handle(door.frame(a, unit(71)))
    door.clock[0] += WINDOW + 0.5  # the matcher was slow: the window is over
    late = door.service.handle(door.frame(a, door.alice, uploaded=NOW + 0.1))
    assert late.frame is FrameStatus.LATE
    assert late.event is not None and late.event.decision is Decision.OPEN  # the frame's truth
    (deny,) = door.door_events()  # the same matcher pass closed it
    assert deny.decision is Decision.DENY and deny.approach == a
    after = door.service.handle(door.frame(a, door.alice))
    assert after.frame is FrameStatus.CONCLUDED
    assert len(door.door_events()) == 1


def test_frames_beyond_the_doors_calibration_do_not_open(door: Door) -> None:
    door.store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6, frames=1))
    a = approach_id()
    assert door.service.handle(door.frame(a, unit(72))).frame is FrameStatus.RECORDED
    second = door.service.handle(door.frame(a, door.alice))
    assert second.frame is FrameStatus.OVER
    door.clock[0] += WINDOW
    door.service.close_due()
    assert [e.decision for e in door.door_events()] == [Decision.DENY]


def test_another_matcher_closes_a_dead_matchers_approach(door: Door) -> None:
    a = approach_id()
    door.service.handle(door.frame(a, unit(73)))  # then this matcher "dies"
    survivor = MatcherService(door.settings, door.store, clock=lambda: door.clock[0])
    door.clock[0] += WINDOW
    assert survivor.close_due() == 1
    assert door.service.close_due() == 0
    assert [e.reason for e in door.door_events()] == [Reason.UNKNOWN_PERSON]


def test_a_redelivered_frame_decides_nothing_more(door: Door) -> None:
    a = approach_id()
    request = door.frame(a, door.alice)
    first = door.service.handle(request)
    door.store.put_probe(request.upload_id, door.alice[None], MODEL, ttl_s=300)
    second = door.service.handle(request)
    assert first.frame is FrameStatus.OPENED and not second.recorded
    assert len(door.door_events()) == 1 and len(door.store.read_log(None)) == 1


def test_frames_without_an_approach_are_decided_one_by_one(door: Door) -> None:
    one = dataclasses.replace(door.frame(approach_id(), unit(74)), approach=None)
    two = dataclasses.replace(door.frame(approach_id(), door.alice), approach=None)
    assert door.service.handle(one).frame is None
    door.service.handle(two)
    assert [e.decision for e in door.door_events()] == [Decision.DENY, Decision.OPEN]


def test_the_sweeper_calls_close_due_until_stopped() -> None:
    calls: list[float] = []
    done = threading.Event()

    def close_due() -> int:
        calls.append(time.monotonic())
        if len(calls) == 3:
            done.set()
        if len(calls) == 2:
            raise RuntimeError("Redis away")  # the sweeper survives it
        return 0

    sweeper = Sweeper(close_due, interval_s=0.01)
    sweeper.start()
    assert done.wait(5.0)
    sweeper.stop()
    count = len(calls)
    time.sleep(0.05)
    assert len(calls) == count


def test_calibrated_threshold_follows_enrol_and_revoke(door: Door) -> None:
    door.store.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"})))
    probe = near(door.alice, 0.44, 11)  # between the 3-person and the 103-person thresholds
    three = identify_threshold([2, 1])
    assert three > 0.44
    ev = door.service.handle(door.frame(approach_id(), probe)).event
    assert ev is not None and ev.decision is Decision.OPEN
    for i in range(100):
        door.store.add_templates(f"p{i}", unit(1000 + i)[None], MODEL)
    assert identify_threshold([2, 1] + [1] * 100) < 0.44
    ev = door.service.handle(door.frame(approach_id(), probe)).event
    assert ev is not None and (ev.decision, ev.reason) == (Decision.DENY, Reason.UNKNOWN_PERSON)
    for i in range(100):
        door.store.remove_person(f"p{i}")
    ev = door.service.handle(door.frame(approach_id(), probe)).event
    assert ev is not None and ev.decision is Decision.OPEN


def test_only_door_events_carry_a_stream_id_a_lock_accepts(door: Door) -> None:
    a = approach_id()
    miss = door.service.handle(door.frame(a, unit(75)))
    hit = door.service.handle(door.frame(a, near(door.alice, 0.2)))
    again = door.service.handle(door.frame(a, door.alice))
    (heard,) = door.door_events()
    assert hit.event is not None and hit.event.stream_id is not None
    assert heard == hit.event  # the event returned is the one recorded, with its stream id
    assert door.store.get_decision(hit.event.upload_id) == door.store.events_since("lobby")[0][1]
    key = door.signer().public_key
    for outcome in (miss, again):  # audited, signed, but never a door event
        assert outcome.event is not None and outcome.event.stream_id is None
        record = door.store.get_decision(outcome.event.upload_id)
        assert record is not None
        with pytest.raises(EventRejected) as refused:
            verify_event(record, key, "lobby", now=door.clock[0], guard=ReplayGuard())
        assert refused.value.reason == "malformed"
    assert again.event is not None and again.event.decision is Decision.OPEN  # even an OPEN


def test_the_closing_deny_is_signed_with_the_doors_current_key(door: Door) -> None:
    a = approach_id()
    door.service.handle(door.frame(a, unit(76)))
    old = door.signer()
    door.store.rotate_door_key("lobby")
    new = door.signer()
    assert new.kid != old.kid
    door.clock[0] += WINDOW
    assert door.service.close_due() == 1  # the sweeper's pass, no frame in between
    ((stream_id, wire),) = door.store.events_since("lobby")
    deny = verify_event(wire, new.public_key, "lobby", now=door.clock[0], stream_id=stream_id)
    assert deny.decision is Decision.DENY and deny.stream_id == stream_id
    with pytest.raises(EventRejected, match="unknown_key"):
        verify_event(wire, old.public_key, "lobby", now=door.clock[0])


def test_an_opening_frame_and_a_closing_deny_share_the_door_stream_in_order(door: Door) -> None:
    first, second = approach_id(), approach_id()
    door.service.handle(door.frame(first, unit(78)))
    door.clock[0] += WINDOW  # first's window is over: the next frame's pass closes it
    door.service.handle(door.frame(second, door.alice))
    heard = door.door_events()
    assert [(e.approach, e.decision) for e in heard] == [
        (second, Decision.OPEN),
        (first, Decision.DENY),
    ]
    # the same millisecond: the DENY was signed again just above the OPEN's id
    assert heard[0].stream_id == f"{int((NOW + WINDOW) * 1000)}-0"
    assert heard[1].stream_id is not None
    assert heard[1].stream_id == stream_id_after(heard[0].stream_id)


# --- stale and unclaimed frames (issue 8's freshness rules meet approaches) ----------------


def test_a_stale_frame_never_opens_and_closes_its_approach_as_timeout(door: Door) -> None:
    """Written longer ago than the deadline: DENY timeout whatever the face;
    its window (from its written-at) is over, so it is audited as late and
    the approach gets its one DENY at once."""
    a = approach_id()
    old = door.service.handle(door.frame(a, door.alice, uploaded=NOW - 11.0))
    assert old.event is not None and (old.event.decision, old.event.reason) == (
        Decision.DENY,
        Reason.TIMEOUT,
    )
    assert old.frame is FrameStatus.LATE and old.event.stream_id is None
    (deny,) = door.door_events()
    assert (deny.decision, deny.reason, deny.approach) == (Decision.DENY, Reason.TIMEOUT, a)
    assert deny.upload_id == old.event.upload_id  # the approach's only frame
    assert len(door.store.read_log(None)) == 2  # the frame's audit entry and the closing DENY


def test_a_frame_from_the_future_never_opens_nor_stretches_the_window(door: Door) -> None:
    """Written further ahead than FACEGATE_CLOCK_SKEW_S: DENY timeout, and
    its window counts from now, not from its stamp."""
    a = approach_id()
    ahead = NOW + door.settings.clock_skew_s + 60.0
    future = door.service.handle(door.frame(a, door.alice, uploaded=ahead))
    assert future.event is not None and future.event.reason is Reason.TIMEOUT
    assert future.frame is FrameStatus.RECORDED and door.door_events() == []
    door.clock[0] += WINDOW
    assert door.service.close_due() == 1  # closed on the ordinary schedule
    assert [(e.reason, e.approach) for e in door.door_events()] == [(Reason.TIMEOUT, a)]


def test_a_stale_frame_does_not_stop_a_fresh_one_from_opening(door: Door) -> None:
    a = approach_id()
    door.service.handle(door.frame(a, unit(79)))  # the stranger: the window starts now
    skewed = door.service.handle(door.frame(a, door.alice, uploaded=NOW + 30.0))
    fresh = door.service.handle(door.frame(a, near(door.alice, 0.2)))
    assert (skewed.frame, fresh.frame) == (FrameStatus.RECORDED, FrameStatus.OPENED)
    heard = door.door_events()
    assert [(e.decision, e.person) for e in heard] == [(Decision.OPEN, "alice")]
    assert fresh.event is not None and heard[0].upload_id == fresh.event.upload_id


def test_an_unclaimed_or_unstamped_frame_never_opens(door: Door) -> None:
    """A frame denied before encoding (no claim: ingest never sends one as a
    frame, but the matcher must not care who did) and one without a
    written-at stamp are recorded as frames, audited, and never open."""
    a = approach_id()
    unclaimed = MatchRequest.denied(
        keys.new_upload_id(), "lobby", "cam-1", reason=Reason.UNCLAIMED,
        stamps={"uploaded": NOW}, approach=a,
    )  # fmt: skip
    unstamped = dataclasses.replace(door.frame(a, door.alice), stamps={"ingested": NOW})
    outcomes = [door.service.handle(unclaimed), door.service.handle(unstamped)]
    assert [(o.frame, o.event and o.event.reason) for o in outcomes] == [
        (FrameStatus.RECORDED, Reason.UNCLAIMED),
        (FrameStatus.RECORDED, Reason.TIMEOUT),
    ]
    assert door.door_events() == []
    for request in (unclaimed, unstamped):  # each has its one decision record, audited
        assert door.store.get_decision(request.upload_id) is not None
    assert len(door.store.read_log(None)) == 2
    door.clock[0] += WINDOW
    assert door.service.close_due() == 1
    (deny,) = door.door_events()
    assert deny.decision is Decision.DENY and deny.approach == a
    # neither frame has a distance: the DENY names one of them, with its reason
    assert (deny.upload_id, deny.reason) in {
        (unclaimed.upload_id, Reason.UNCLAIMED),
        (unstamped.upload_id, Reason.TIMEOUT),
    }
