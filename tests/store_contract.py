"""The behaviour every :class:`facegate.adapters.store.Store` must have.

Run against the in-memory fake in the unit tier
(``tests/unit/test_memory_store.py``) and against real Redis in the
integration tier (``tests/integration/test_redis_store.py``): subclass
:class:`StoreContract` and provide a ``store`` fixture (an empty store) and
a ``heard`` fixture (what was published on a door's channel).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from facegate.adapters.store import ChangeKind, FrameRecorded, FrameStatus, Store
from facegate.core import keys
from facegate.core.access import AccessRule, RuleKind
from facegate.core.errors import BadMessageError
from facegate.core.event_verify import EventRejected, ReplayGuard, signed_message, verify_event
from facegate.core.ids import stream_id_key
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.schedule import Schedule
from facegate.core.signing import DoorSigner

UID = "0123456789abcdef0123456789abcdef"
SECRET = "store-contract-secret-0123456789"
SIGNERS = {door: DoorSigner.derive(SECRET, door) for door in ("front", "back")}


def sign(event: DoorEvent) -> bytes:
    """What the matcher hands the store: the door's key signing the event."""
    return SIGNERS[event.door].sign(event)


def event(upload_id: str = UID, door: str = "front", **over: Any) -> DoorEvent:
    fields: dict[str, Any] = {
        "id": keys.new_upload_id(),
        "upload_id": upload_id,
        "door": door,
        "camera": "cam",
        "decision": Decision.DENY,
        "reason": Reason.NO_FACE,
        "issued_at": 1000.0,
        "expires_at": 1030.0,
    }
    fields.update(over)
    return DoorEvent(**fields)


APPROACH = "fedcba9876543210fedcba9876543210"
WINDOW_END = 1000.5

Heard = Callable[[str], list[bytes]]
"""``heard(door)``: every wire published on the door's channel so far, in
order (each subclass provides the ``heard`` fixture: the fake's
``published``, a real subscriber on Redis)."""


def frame(decision: Decision = Decision.DENY, distance: float | None = None) -> DoorEvent:
    """One frame of APPROACH at door front, camera cam."""
    if decision is Decision.OPEN:
        return event(
            upload_id=keys.new_upload_id(),
            decision=Decision.OPEN,
            reason=Reason.GRANTED,
            person="alice",
            distance=distance,
            approach=APPROACH,
        )
    reason = Reason.UNKNOWN_PERSON if distance is not None else Reason.NO_FACE
    return event(
        upload_id=keys.new_upload_id(), reason=reason, distance=distance, approach=APPROACH
    )


def record(store: Store, ev: DoorEvent, now: float = 999.0, max_frames: int = 3) -> FrameRecorded:
    return store.record_frame(ev, sign, window_end=WINDOW_END, now=now, max_frames=max_frames)


def closing(upload_id: str) -> DoorEvent:
    return event(upload_id=upload_id, reason=Reason.UNKNOWN_PERSON, approach=APPROACH,
                 issued_at=1001.0, expires_at=1031.0)


def lock_check(wire: bytes, stream_id: str | None = None) -> DoorEvent:
    """What a lock of door front makes of ``wire`` (raises EventRejected)."""
    return verify_event(wire, SIGNERS["front"].public_key, "front", now=1001.0,
                        stream_id=stream_id, guard=ReplayGuard())


class StoreContract:
    """Subclasses provide the ``store`` and ``heard`` fixtures."""

    def test_approach_first_open_only_reaches_the_door(self, store: Store, heard: Heard) -> None:
        miss, hit, again = frame(), frame(Decision.OPEN, 0.3), frame(Decision.OPEN, 0.2)
        assert record(store, miss).status is FrameStatus.RECORDED
        assert store.read_log("front") == [] and heard("front") == []  # not a door event
        opened = record(store, hit)
        assert opened.status is FrameStatus.OPENED and opened.published
        assert opened.event == replace(hit, stream_id=opened.event.stream_id)
        assert record(store, again).status is FrameStatus.CONCLUDED
        assert record(store, hit).status is FrameStatus.DUPLICATE  # redelivered frame
        # the one door event: signed with the id of its entry, the same bytes
        # in the stream, on the channel and as the upload's decision
        ((entry_id, wire),) = store.events_since("front")
        assert wire == opened.wire and heard("front") == [opened.wire]
        assert store.get_decision(hit.upload_id) == opened.wire
        assert lock_check(wire, entry_id).stream_id == entry_id == opened.event.stream_id
        assert stream_id_key(entry_id) == (1_000_000, 0)  # its issue time, as any decision
        assert len(store.read_log(None)) == 3  # every frame audited once

    def test_frames_that_do_not_open_are_audited_without_a_stream_id(self, store: Store) -> None:
        first, hit, late = frame(distance=0.7), frame(Decision.OPEN, 0.3), frame(Decision.OPEN)
        kept = [record(store, first), record(store, hit), record(store, late)]
        assert [k.status for k in kept] == [
            FrameStatus.RECORDED, FrameStatus.OPENED, FrameStatus.CONCLUDED]
        audit = [w for _, w in reversed(store.read_log(None))]
        assert audit == [k.wire for k in kept]  # the audit entry is the decision record
        for k, ev in ((kept[0], first), (kept[2], late)):
            assert k.event == ev and k.event.stream_id is None
            assert store.get_decision(ev.upload_id) == k.wire
            with pytest.raises(EventRejected) as refused:  # signed, but no lock takes it
                lock_check(k.wire)
            assert refused.value.reason == "malformed"
            assert SIGNERS["front"].public_key.verify(  # an auditor can still check it
                bytes.fromhex(json.loads(k.wire)["sig"]),
                signed_message(SIGNERS["front"].kid, json.loads(k.wire)["event"]),
            )

    def test_approach_closes_with_one_deny(self, store: Store, heard: Heard) -> None:
        far, near, blank = frame(distance=0.8), frame(distance=0.55), frame()
        for ev in (far, near, blank):
            assert record(store, ev).status is FrameStatus.RECORDED
        assert store.due_approaches(now=WINDOW_END - 0.5) == []
        (due,) = store.due_approaches(now=WINDOW_END)
        assert (due.door, due.camera, due.approach, due.frames) == ("front", "cam", APPROACH, 3)
        assert (due.upload_id, due.distance, due.reason) == (near.upload_id, 0.55, "unknown_person")
        closed = store.record_approach_close(closing(near.upload_id), sign, due.key)
        assert closed is not None
        assert store.record_approach_close(closing(near.upload_id), sign, due.key) is None
        ((entry_id, wire),) = store.events_since("front")
        assert wire == closed.wire and heard("front") == [closed.wire]
        deny = lock_check(wire, entry_id)
        assert (deny.decision, deny.approach, deny.stream_id) == (Decision.DENY, APPROACH, entry_id)
        assert stream_id_key(entry_id) == (1_001_000, 0)
        assert store.due_approaches(now=5000.0) == []
        # a frame decided after the close is audited, never published
        assert record(store, frame(Decision.OPEN, 0.1)).status is FrameStatus.CONCLUDED
        assert len(store.read_log("front")) == 1 and len(store.read_log(None)) == 5
        assert heard("front") == [closed.wire]

    def test_approach_events_and_decisions_share_the_door_stream(
        self, store: Store, heard: Heard
    ) -> None:
        """Issued in the same millisecond: each is signed again above the last id."""
        single = store.record_decision(event(upload_id=keys.new_upload_id()), sign)
        first = record(store, frame())
        store.record_frame(  # a second approach, its window already over
            replace(frame(), approach="ab" * 16), sign, window_end=WINDOW_END, now=WINDOW_END,
            max_frames=3)
        opened = record(store, frame(Decision.OPEN, 0.2))
        (due,) = store.due_approaches(now=WINDOW_END)
        closed = store.record_approach_close(
            replace(closing(due.upload_id), issued_at=1000.0, expires_at=1030.0), sign, due.key)
        assert single is not None and closed is not None and first.event.stream_id is None
        entries = store.events_since("front")
        assert [sid for sid, _ in entries] == ["1000000-0", "1000000-1", "1000000-2"]
        assert [w for _, w in entries] == [single.wire, opened.wire, closed.wire]
        assert heard("front") == [single.wire, opened.wire, closed.wire]
        for sid, wire in entries:
            assert lock_check(wire, sid).stream_id == sid

    def test_approach_late_and_over_frames_cannot_open(self, store: Store, heard: Heard) -> None:
        assert record(store, frame(), max_frames=1).status is FrameStatus.RECORDED
        assert record(store, frame(Decision.OPEN, 0.2), max_frames=1).status is FrameStatus.OVER
        late = frame(Decision.OPEN, 0.2)
        assert record(store, late, now=WINDOW_END + 1, max_frames=1).status is FrameStatus.LATE
        assert store.read_log("front") == [] and heard("front") == []
        (due,) = store.due_approaches(now=WINDOW_END)
        assert due.frames == 3

    def test_approach_window_is_the_earliest_proposed(self, store: Store) -> None:
        store.record_frame(frame(), sign, window_end=1005.0, now=999.0, max_frames=3)
        assert store.due_approaches(now=1002.0) == []
        store.record_frame(frame(), sign, window_end=1001.0, now=999.0, max_frames=3)
        (due,) = store.due_approaches(now=1002.0)
        assert due.window_end == 1001.0

    def test_approach_racing_frames_one_open(self, store: Store, heard: Heard) -> None:
        barrier = threading.Barrier(6)
        results: list[FrameRecorded] = []

        def race() -> None:
            ev = frame(Decision.OPEN, 0.3)
            barrier.wait()
            results.append(store.record_frame(ev, sign, window_end=WINDOW_END, now=999.0,
                                              max_frames=10))

        threads = [threading.Thread(target=race) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status for r in results)
        assert statuses == [FrameStatus.CONCLUDED] * 5 + [FrameStatus.OPENED]
        (opened,) = [r for r in results if r.published]
        assert [w for _, w in store.events_since("front")] == [opened.wire] == heard("front")
        assert len(store.read_log(None)) == 6

    def test_approach_racing_closers_one_deny(self, store: Store, heard: Heard) -> None:
        record(store, frame(distance=0.7))
        (due,) = store.due_approaches(now=WINDOW_END)
        results: list[bool] = []
        barrier = threading.Barrier(6)

        def race() -> None:
            close = closing(due.upload_id)
            barrier.wait()
            results.append(store.record_approach_close(close, sign, due.key) is not None)

        threads = [threading.Thread(target=race) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 5 + [True]
        assert len(store.read_log("front")) == 1 and len(heard("front")) == 1

    def test_probe_round_trip(self, store: Store) -> None:
        enc = np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32)
        boxes = [{"left": 1, "top": 2}, {"left": 5, "top": 6}]
        store.put_probe(UID, enc, "model-a", ttl_s=60, boxes=boxes)
        probe = store.get_probe(UID)
        assert probe is not None and probe.model_id == "model-a" and probe.faces == 2
        np.testing.assert_array_equal(probe.encodings, enc)
        assert probe.boxes[1]["left"] == 5
        other = keys.new_upload_id()
        store.put_probe(other, np.zeros((0, 128), np.float32), "model-a", ttl_s=60)
        empty = store.get_probe(other)
        assert empty is not None and empty.encodings.shape == (0, 128)
        assert store.get_probe(keys.new_upload_id()) is None
        store.delete_probe(UID)
        assert store.get_probe(UID) is None
        with pytest.raises(ValueError, match="dimension"):
            store.put_probe(other, np.zeros((0,), np.float32), "model-a", ttl_s=60)
        with pytest.raises(ValueError, match="box"):
            store.put_probe(other, enc, "model-a", ttl_s=60, boxes=boxes[:1])
        with pytest.raises(BadMessageError):
            store.get_probe("not-an-id")

    def test_templates_and_gallery_version(self, store: Store) -> None:
        assert store.gallery_version() == 0
        a = np.random.default_rng(1).normal(size=(3, 128)).astype(np.float32)
        ids = store.add_templates("alice", a, "model-a")
        assert len(ids) == 3 and len(set(ids)) == 3
        store.add_templates("bob", a[0], "model-a")
        v1 = store.gallery_version()
        assert v1 == 2
        version, snap = store.templates_snapshot("model-a")
        assert version == v1 and sorted(snap) == ["alice", "bob"]
        assert {r.tobytes() for r in snap["alice"]} == {r.tobytes() for r in a}
        with pytest.raises(BadMessageError, match="model"):
            store.add_templates("alice", a, "model-b")
        with pytest.raises(BadMessageError, match="model"):
            store.add_templates("alice", a[:, :64], "model-a")
        with pytest.raises(ValueError, match="NaN"):
            store.add_templates("carol", np.full((1, 128), np.nan, np.float32), "model-a")
        assert store.templates_snapshot("model-b")[1] == {}
        assert store.remove_person("alice") is True
        assert store.remove_person("alice") is False
        assert store.people() == ["bob"]
        assert store.gallery_version() > v1

    def test_every_change_has_its_record(self, store: Store) -> None:
        a = np.random.default_rng(2).normal(size=(2, 128)).astype(np.float32)
        store.add_templates("alice", a, "model-a")
        store.set_door(DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"*"}), None))
        store.add_templates("bob", a[:1], "model-a")
        store.remove_person("alice")
        store.rotate_door_key("front")
        store.delete_door("front")
        with pytest.raises(BadMessageError, match="model"):
            store.add_templates("bob", a, "model-b")  # refused: no version, no record
        read = store.gallery_changes(0)
        assert read.version == store.gallery_version() == 6
        assert [(c.version, c.kind, c.name) for c in read.changes] == [
            (1, ChangeKind.PERSON, "alice"),
            (2, ChangeKind.DOOR, "front"),
            (3, ChangeKind.PERSON, "bob"),
            (4, ChangeKind.PERSON, "alice"),
            (5, ChangeKind.DOOR, "front"),
            (6, ChangeKind.DOOR, "front"),
        ]
        later = store.gallery_changes(3, limit=2)
        assert later.version == 6 and [c.version for c in later.changes] == [4, 5]
        assert store.gallery_changes(6).changes == ()
        stored = store.stored_people(["bob", "alice", "nobody"])
        assert stored["alice"] is None and stored["nobody"] is None
        bob = stored["bob"]
        assert bob is not None and bob.model_id == "model-a"
        assert bob.templates.tobytes() == a[:1].tobytes()

    def test_change_stream_is_capped(self, store: Store) -> None:
        store.changes_maxlen = 10  # type: ignore[attr-defined]
        for i in range(300):
            store.set_door(DoorPolicy(f"d{i % 3}", DoorMode.VERIFY, frozenset(), 0.6))
        records = store.gallery_changes(0, limit=1000).changes
        assert 10 <= len(records) < 300  # trimmed (Redis trims about: whole nodes)
        assert [c.version for c in records] == list(range(301 - len(records), 301))
        assert records[-1].name == "d2"

    def test_concurrent_writes_get_consecutive_versions(self, store: Store) -> None:
        a = np.random.default_rng(3).normal(size=(1, 128)).astype(np.float32)

        def enrol(k: int) -> None:
            for i in range(20):
                store.add_templates(f"p{k}-{i}", a, "model-a")
                store.remove_person(f"p{k}-{i}")

        workers = [threading.Thread(target=enrol, args=(k,)) for k in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        records = store.gallery_changes(0, limit=1000).changes
        assert [c.version for c in records] == list(range(1, 161))
        names = [c.name for c in records]
        assert all(names.count(f"p{k}-{i}") == 2 for k in range(4) for i in range(20))
        assert store.gallery_version() == 160 and store.people() == []

    def test_doors(self, store: Store) -> None:
        assert store.get_door("front") is None
        policy = DoorPolicy("front", DoorMode.VERIFY, frozenset({"alice"}), 0.5, 0.0)
        before = store.gallery_version()
        store.set_door(policy)
        assert store.get_door("front") == policy
        assert store.gallery_version() == before + 1
        store.set_door(DoorPolicy("back", DoorMode.IDENTIFY, frozenset({"*"}), 0.6, 0.1))
        assert store.list_doors() == ["back", "front"]
        assert store.delete_door("front") is True
        assert store.delete_door("front") is False
        assert store.get_door("front") is None and store.list_doors() == ["back"]
        with pytest.raises(BadMessageError):
            store.get_door("../x")

    def test_door_rules_are_kept_with_the_door(self, store: Store) -> None:
        rules = (
            AccessRule(RuleKind.GROUP, "staff", Schedule.parse("mon-fri 07:00-19:00")),
            AccessRule(RuleKind.PERSON, "dave", Schedule.parse("fri 22:00-02:00")),
            AccessRule(RuleKind.GROUP, "guards"),
        )
        policy = DoorPolicy("front", DoorMode.IDENTIFY, frozenset({"alice"}), None, rules=rules)
        store.set_door(policy)
        assert store.get_door("front") == policy
        assert store.get_door("front").rules == rules  # type: ignore[union-attr]

    def test_groups_and_memberships(self, store: Store) -> None:
        assert store.list_groups() == []
        assert store.add_group("staff") is True
        assert store.add_group("staff") is False
        store.add_group("guards")
        assert store.list_groups() == ["guards", "staff"]
        before = store.gallery_version()
        assert store.add_member("staff", "erin") is True
        assert store.add_member("staff", "erin") is False
        assert store.gallery_version() > before  # a door's admitted people may have changed
        store.add_member("guards", "erin")
        store.add_member("staff", "frank")
        assert store.group_members("staff") == ["erin", "frank"]
        assert store.groups_of("erin") == ["guards", "staff"]
        with pytest.raises(BadMessageError, match="no group"):
            store.add_member("nobody", "erin")
        assert store.groups_of("erin") == ["guards", "staff"]
        with pytest.raises(BadMessageError):
            store.add_member("staff", "../x")
        with pytest.raises(BadMessageError):
            store.add_group("bad group")
        assert store.remove_member("staff", "frank") is True
        assert store.remove_member("staff", "frank") is False
        assert store.groups_of("frank") == []
        # deleting a group ends its memberships, in both directions
        version = store.gallery_version()
        assert store.delete_group("guards") is True
        assert store.delete_group("guards") is False
        assert store.groups_of("erin") == ["staff"] and store.list_groups() == ["staff"]
        assert store.gallery_version() > version

    def test_group_changes_have_their_records(self, store: Store) -> None:
        store.add_group("staff")
        start = store.gallery_version()
        store.add_member("staff", "erin")
        store.remove_member("staff", "erin")
        store.add_member("staff", "frank")
        store.add_templates("frank", np.ones((1, 128), np.float32), "m")
        store.remove_person("frank")  # memberships first, then the templates
        store.delete_group("staff")
        read = store.gallery_changes(start)
        assert [(c.version - start, c.kind, c.name) for c in read.changes] == [
            (1, ChangeKind.GROUP, "staff"),
            (2, ChangeKind.GROUP, "staff"),
            (3, ChangeKind.GROUP, "staff"),
            (4, ChangeKind.PERSON, "frank"),
            (5, ChangeKind.GROUP, "frank"),
            (6, ChangeKind.PERSON, "frank"),
            (7, ChangeKind.GROUP, "staff"),
        ]
        assert read.version == start + 7
        with pytest.raises(BadMessageError, match="no group"):
            store.add_member("staff", "erin")  # refused: no version, no record
        assert store.gallery_version() == start + 7

    def test_revoking_a_person_ends_their_memberships(self, store: Store) -> None:
        store.add_templates("erin", np.ones((1, 128), np.float32), "m")
        store.add_group("staff")
        store.add_group("guards")
        store.add_member("staff", "erin")
        store.add_member("guards", "erin")
        store.add_member("staff", "frank")
        assert store.remove_person("erin") is True
        assert store.groups_of("erin") == []
        assert store.group_members("staff") == ["frank"] and store.group_members("guards") == []
        assert store.list_groups() == ["guards", "staff"]  # the groups themselves stay

    def test_claims(self, store: Store) -> None:
        key = keys.upload_object_key("front", "cam", UID, "jpg")
        store.put_claim(UID, key=key, door="front", camera="cam", badge="alice", ttl_s=120)
        claim = store.get_claim(UID)
        assert claim is not None and (claim.key, claim.badge) == (key, "alice")
        assert (claim.direct, claim.enqueued_at) == (False, None)
        store.mark_enqueued(UID, 1234.5)
        marked = store.get_claim(UID)
        assert marked is not None and marked.enqueued_at == pytest.approx(1234.5)
        other = keys.new_upload_id()
        store.put_claim(other, key="k", door="front", camera="cam", badge=None, ttl_s=60,
                        direct=True)
        got = store.get_claim(other)
        assert got is not None and got.badge is None and got.direct
        # marking an upload without a claim creates nothing
        ghost = keys.new_upload_id()
        store.mark_enqueued(ghost, 1.0)
        assert store.get_claim(ghost) is None
        with pytest.raises(BadMessageError):
            store.put_claim(UID, key=key, door="a:b", camera="cam", badge=None, ttl_s=60)

    def test_pending_marks(self, store: Store) -> None:
        assert store.is_pending(UID) is False
        store.mark_pending(UID, ttl_s=60)
        assert store.is_pending(UID) is True
        assert store.is_pending(keys.new_upload_id()) is False
        with pytest.raises(BadMessageError):
            store.mark_pending("not-an-id", ttl_s=60)

    def test_one_lease_holder_at_a_time(self, store: Store) -> None:
        lease = keys.RECONCILER_LEASE
        assert store.hold_lease(lease, "ingest-a", ttl_s=0.3) is True
        assert store.hold_lease(lease, "ingest-b", ttl_s=0.3) is False
        assert store.hold_lease(lease, "ingest-a", ttl_s=0.3) is True  # renewed by its holder
        store.release_lease(lease, "ingest-b")  # not b's to release
        assert store.hold_lease(lease, "ingest-b", ttl_s=0.3) is False
        store.release_lease(lease, "ingest-a")
        assert store.hold_lease(lease, "ingest-b", ttl_s=0.3) is True
        time.sleep(0.45)  # b stopped renewing (crashed): the lease frees itself
        assert store.hold_lease(lease, "ingest-a", ttl_s=0.3) is True

    def test_cursor(self, store: Store) -> None:
        assert store.get_cursor(keys.RECONCILER_CURSOR) == ""
        store.set_cursor(keys.RECONCILER_CURSOR, "uploads/front/cam/" + UID + ".jpg")
        assert store.get_cursor(keys.RECONCILER_CURSOR) == "uploads/front/cam/" + UID + ".jpg"
        store.set_cursor(keys.RECONCILER_CURSOR, "")
        assert store.get_cursor(keys.RECONCILER_CURSOR) == ""

    def test_record_decision_exactly_once(self, store: Store) -> None:
        ev = event()
        recorded = store.record_decision(ev, sign)
        assert recorded is not None
        assert recorded.event.stream_id is not None
        assert recorded.event == replace(ev, stream_id=recorded.event.stream_id)
        second = event(reason=Reason.TIMEOUT)
        assert store.record_decision(second, sign) is None
        assert store.get_decision(UID) == recorded.wire
        assert [w for _, w in store.read_log("front")] == [recorded.wire]
        assert [w for _, w in store.read_log(None)] == [recorded.wire]
        assert store.get_decision(keys.new_upload_id()) is None

    def test_recorded_event_is_signed_with_its_stream_id(self, store: Store) -> None:
        recorded = store.record_decision(event(), sign)
        assert recorded is not None
        ((entry_id, wire),) = store.events_since("front")
        assert wire == recorded.wire
        # the id under the signature is the entry's: a lock can resume from it
        checked = verify_event(wire, SIGNERS["front"].public_key, "front", now=1001.0,
                               stream_id=entry_id, guard=ReplayGuard())
        assert checked.stream_id == entry_id == recorded.event.stream_id
        # the first id tried is the event's issue time in milliseconds
        assert stream_id_key(entry_id) == (1_000_000, 0)

    def test_same_millisecond_decisions_get_increasing_ids(self, store: Store) -> None:
        ids = []
        for _ in range(5):  # same issued_at: each must be signed again above the last
            recorded = store.record_decision(event(upload_id=keys.new_upload_id()), sign)
            assert recorded is not None
            ids.append(recorded.event.stream_id)
        assert ids == [f"1000000-{n}" for n in range(5)]
        assert [sid for sid, _ in store.events_since("front")] == ids
        # an event issued "earlier" (a matcher with a slow clock) still goes after them
        late = store.record_decision(event(upload_id=keys.new_upload_id(), issued_at=900.0,
                                           expires_at=930.0), sign)
        assert late is not None and late.event.stream_id == "1000000-5"

    def test_concurrent_records_one_winner(self, store: Store) -> None:
        ev = event()
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def race() -> None:
            barrier.wait()
            results.append(store.record_decision(ev, sign) is not None)

        threads = [threading.Thread(target=race) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 7 + [True]
        assert len(store.read_log("front")) == 1

    def test_concurrent_doors_decisions_all_recorded_in_order(self, store: Store) -> None:
        barrier = threading.Barrier(6)
        recorded: list[str] = []

        def decide() -> None:
            barrier.wait()
            for _ in range(5):
                done = store.record_decision(event(upload_id=keys.new_upload_id()), sign)
                assert done is not None and done.event.stream_id is not None
                recorded.append(done.event.stream_id)

        threads = [threading.Thread(target=decide) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        in_stream = [sid for sid, _ in store.events_since("front", count=100)]
        assert sorted(recorded, key=stream_id_key) == in_stream and len(in_stream) == 30

    def test_log_and_catch_up(self, store: Store) -> None:
        wires = []
        for _ in range(5):
            recorded = store.record_decision(event(upload_id=keys.new_upload_id()), sign)
            assert recorded is not None
            wires.append(recorded.wire)
        store.record_decision(event(upload_id=keys.new_upload_id(), door="back"), sign)
        log = store.read_log("front", count=3)
        assert [w for _, w in log] == wires[::-1][:3]
        assert len(store.read_log(None, count=50)) == 6
        first_two = store.events_since("front", count=2)
        assert [w for _, w in first_two] == wires[:2]
        rest = store.events_since("front", first_two[-1][0])
        assert [w for _, w in rest] == wires[2:]
        assert store.events_since("front", rest[-1][0]) == []

    def test_door_key_versions(self, store: Store) -> None:
        assert store.door_key_version("front") == 1
        version = store.gallery_version()
        assert store.rotate_door_key("front") == 2
        assert store.gallery_version() > version  # matchers notice
        assert store.rotate_door_key("front") == 3
        assert (store.door_key_version("front"), store.door_key_version("back")) == (3, 1)
        # replacing or removing the door keeps its key version (no old key comes back)
        store.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset(), 0.6))
        store.delete_door("front")
        assert store.door_key_version("front") == 3
        with pytest.raises(BadMessageError):
            store.rotate_door_key("a:b")

    def test_replies(self, store: Store) -> None:
        assert store.wait_reply(UID, 0.1) is None

        def later() -> None:
            time.sleep(0.2)
            store.push_reply(UID, b'{"ok": true}')

        pusher = threading.Thread(target=later)
        pusher.start()
        t0 = time.monotonic()
        got = store.wait_reply(UID, 5.0)
        waited = time.monotonic() - t0
        pusher.join()
        assert got == b'{"ok": true}'
        assert 0.1 < waited < 2.0
        store.push_reply(UID, "one")
        store.push_reply(UID, "two")
        assert store.wait_reply(UID, 1.0) == b"one"
        assert store.wait_reply(UID, 1.0) == b"two"
        assert store.wait_reply(UID, 0.1) is None

    def test_admin_records_share_the_audit_stream_without_disturbing_the_log(
        self, store: Store
    ) -> None:
        from facegate.core.audit import Action, AdminAction

        ev = event()
        assert store.record_decision(ev, sign) is not None
        first = AdminAction("console:ann", Action.DOOR_SET, "front", 1000.0, {"mode": "verify"})
        second = AdminAction("cli:root", Action.REVOKE, "bob", 1001.0)
        store.record_admin(first)
        store.record_admin(second)
        # the decision log still holds decisions only
        assert [json.loads(w)["event"]["upload_id"] for _, w in store.read_log(None)] == [UID]
        got = [a for _, a in store.admin_actions(10)]
        assert got == [second, first]
        assert [a for _, a in store.admin_actions(1)] == [second]
