"""The behaviour every :class:`facegate.adapters.store.Store` must have.

Run against the in-memory fake in the unit tier
(``tests/unit/test_memory_store.py``) and against real Redis in the
integration tier (``tests/integration/test_redis_store.py``): subclass
:class:`StoreContract` and provide a ``store`` fixture (an empty store).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from facegate.adapters.store import Store
from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import sign_event

UID = "0123456789abcdef0123456789abcdef"
KEY = b"k" * 32


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


class StoreContract:
    """Subclasses provide the ``store`` fixture."""

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
        wire = sign_event(ev, KEY)
        assert store.record_decision(wire, ev) is True
        second = event(reason=Reason.TIMEOUT)
        assert store.record_decision(sign_event(second, KEY), second) is False
        assert store.get_decision(UID) == wire
        assert [w for _, w in store.read_log("front")] == [wire]
        assert [w for _, w in store.read_log(None)] == [wire]
        assert store.get_decision(keys.new_upload_id()) is None

    def test_concurrent_records_one_winner(self, store: Store) -> None:
        ev = event()
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def race() -> None:
            barrier.wait()
            results.append(store.record_decision(sign_event(ev, KEY), ev))

        threads = [threading.Thread(target=race) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 7 + [True]
        assert len(store.read_log("front")) == 1

    def test_log_and_catch_up(self, store: Store) -> None:
        wires = []
        for _ in range(5):
            ev = event(upload_id=keys.new_upload_id())
            wire = sign_event(ev, KEY)
            wires.append(wire)
            assert store.record_decision(wire, ev)
        other = event(upload_id=keys.new_upload_id(), door="back")
        store.record_decision(sign_event(other, KEY), other)
        log = store.read_log("front", count=3)
        assert [w for _, w in log] == wires[::-1][:3]
        assert len(store.read_log(None, count=50)) == 6
        first_two = store.events_since("front", count=2)
        assert [w for _, w in first_two] == wires[:2]
        rest = store.events_since("front", first_two[-1][0])
        assert [w for _, w in rest] == wires[2:]
        assert store.events_since("front", rest[-1][0]) == []

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
