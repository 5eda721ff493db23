"""The reconciler on the in-memory stores: what a pass sends and what it
leaves, bounded passes walking the bucket, one lease holder at a time."""

from __future__ import annotations

import threading

import pytest
from test_ingest_service import BUCKET, CAM, NOW, World, make_world

from facegate.core import keys
from facegate.core.messages import Decision, DoorEvent, Reason
from services.ingest.reconciler import Reconciler

pytestmark = pytest.mark.unit


def reconciler(world: World, holder: str = "ingest-a") -> Reconciler:
    return Reconciler(world.app, holder=holder, clock=lambda: world.clock[0])


def put_at(world: World, when: float, key: str) -> None:
    saved = world.clock[0]
    world.clock[0] = when
    world.objects.put(key, b"\xff\xd8", "image/jpeg")
    world.clock[0] = saved


def claimed(world: World, badge: str | None = "alice") -> str:
    ticket = world.app.presign("front", "cam1", badge, CAM)
    return ticket.key


def decide(world: World, key: str) -> None:
    upload_id = keys.parse_upload_key(key)[2]
    event = DoorEvent(
        id=keys.new_upload_id(), upload_id=upload_id, door="front", decision=Decision.DENY,
        reason=Reason.TIMEOUT, issued_at=NOW, expires_at=NOW + 30,
    )  # fmt: skip
    world.claims.record_decision(event, DoorEvent.to_json)  # unsigned: ingest reads no wire


@pytest.fixture
def world() -> World:
    return make_world(
        reconcile_grace_s="30", reconcile_horizon_s="3600", reconcile_batch="100",
        reconcile_retry_s="300",
    )  # fmt: skip


def test_a_pass_sends_exactly_the_forgotten_uploads(world: World) -> None:
    lost_claimed = claimed(world)
    lost_unclaimed = keys.upload_object_key("lobby", "cam2", keys.new_upload_id())
    young = claimed(world)
    ancient = keys.upload_object_key("side", "cam3", keys.new_upload_id())
    decided = claimed(world)
    pending = claimed(world)
    put_at(world, NOW - 100, lost_claimed)
    put_at(world, NOW - 100, lost_unclaimed)
    put_at(world, NOW - 10, young)  # its webhook may still be on the way
    put_at(world, NOW - 7200, ancient)  # beyond the horizon: settled long ago
    put_at(world, NOW - 100, decided)
    put_at(world, NOW - 100, pending)
    put_at(world, NOW - 100, "uploads/front/not-an-upload.jpg")
    decide(world, decided)
    world.claims.mark_pending(keys.parse_upload_key(pending)[2], 300)

    result = reconciler(world).run_pass()

    assert result.ran and result.wrapped
    assert (result.listed, result.young, result.old, result.settled, result.ignored) == (
        7, 1, 1, 2, 1,
    )  # fmt: skip
    assert sorted(result.sent) == sorted(keys.parse_upload_key(k)[2] for k in
                                         (lost_claimed, lost_unclaimed))  # fmt: skip
    (encode,) = world.sender.sent
    assert (encode.key, encode.badge) == (lost_claimed, "alice")
    assert encode.stamps["uploaded"] == NOW - 100  # its written-at, not now
    (unclaimed,) = world.matches.sent
    assert unclaimed.error is Reason.UNCLAIMED
    assert unclaimed.stamps["uploaded"] == NOW - 100

    # the next pass finds them pending: nothing is sent twice
    again = reconciler(world).run_pass()
    assert again.sent == [] and len(world.sender.sent) == 1 and len(world.matches.sent) == 1


def test_an_upload_still_undecided_after_the_retry_time_is_sent_again(world: World) -> None:
    key = claimed(world)
    put_at(world, NOW - 100, key)
    assert len(reconciler(world).run_pass().sent) == 1
    world.clock[0] = NOW + 299
    assert reconciler(world).run_pass().sent == []
    world.clock[0] = NOW + 301  # its task was lost (broker crash): the pending mark expired
    assert len(reconciler(world).run_pass().sent) == 1
    # its claim has expired by now too: it goes as unclaimed, and being 401 s
    # old it is stale, which the matcher checks first (DENY timeout)
    assert len(world.sender.sent) == 1
    (again,) = world.matches.sent
    assert again.error is Reason.UNCLAIMED and again.stamps["uploaded"] == NOW - 100


def test_passes_are_bounded_and_walk_the_whole_bucket() -> None:
    world = make_world(reconcile_batch="2", reconcile_grace_s="30")
    lost = sorted(keys.upload_object_key("front", "cam1", keys.new_upload_id()) for _ in range(5))
    for key in lost:
        put_at(world, NOW - 100, key)
    passes = [reconciler(world).run_pass() for _ in range(3)]
    assert [p.listed for p in passes] == [2, 2, 1]
    assert [p.wrapped for p in passes] == [False, False, True]
    sent = [uid for p in passes for uid in p.sent]
    assert sorted(sent) == sorted(keys.parse_upload_key(k)[2] for k in lost)
    assert world.claims.get_cursor(keys.RECONCILER_CURSOR) == ""  # starts over next time
    assert reconciler(world).run_pass().listed == 2


def test_one_instance_runs_the_passes(world: World) -> None:
    key = claimed(world)
    put_at(world, NOW - 100, key)
    a, b = reconciler(world, "ingest-a"), reconciler(world, "ingest-b")
    assert b.run_pass().ran is True  # b took the lease
    assert a.run_pass().ran is False
    b.release()
    assert a.run_pass().ran is True
    assert len(world.sender.sent) == 1


def test_the_loop_survives_a_failing_pass_and_releases_its_lease(world: World) -> None:
    key = claimed(world)
    put_at(world, NOW - 100, key)
    world.objects.available = False  # the object store is down for the first pass
    stop = threading.Event()
    rec = Reconciler(
        world.app.__class__(
            world.app.settings.model_copy(update={"reconcile_interval_s": 0.05}),
            world.objects, world.claims, world.sender, world.matches,
            clock=lambda: world.clock[0],
        ),
        holder="loop", clock=lambda: world.clock[0],
    )  # fmt: skip
    thread = threading.Thread(target=rec.run, args=(stop,))
    thread.start()
    try:
        threading.Event().wait(0.2)
        assert world.sender.sent == []
        world.objects.available = True
        for _ in range(100):
            if world.sender.sent:
                break
            threading.Event().wait(0.02)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert [r.key for r in world.sender.sent] == [key]
    assert world.claims.hold_lease(keys.RECONCILER_LEASE, "someone-else", 1.0)  # released


def test_bucket_name_is_the_apps(world: World) -> None:
    key = claimed(world)
    put_at(world, NOW - 100, key)
    reconciler(world).run_pass()
    assert world.sender.sent[0].bucket == BUCKET
