"""The matcher's gallery follows the change stream: the changed person or
door only, a full reload only at start and on a gap (in-memory store)."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_store import MemoryStore
from facegate.adapters.store import GalleryChanges
from facegate.core import keys
from facegate.core.access import AccessRule, RuleKind
from facegate.core.matching import Gallery
from facegate.core.messages import Decision, MatchRequest
from facegate.core.policy import EVERYONE, DoorMode, DoorPolicy, door_threshold
from services.matcher.service import MatcherService
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit

MODEL = "synthetic-128"


def unit(seed: int, k: int = 1) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(k, 128))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def make(store: Any) -> MatcherService:
    settings = MatcherSettings.from_env(with_secrets(signing_secret="unit-test-secret-0123456789"))
    return MatcherService(settings, store)


def ask(service: MatcherService, store: MemoryStore, probe: np.ndarray, door: str = "hall") -> Any:
    """One decision (the clock is real: fresh uploads)."""
    upload_id = keys.new_upload_id()
    store.put_probe(upload_id, probe[None], MODEL, ttl_s=60)
    request = MatchRequest(
        upload_id=upload_id,
        door=door,
        camera="cam",
        faces=1,
        model_id=MODEL,
        stamps={"uploaded": service.clock()},
    )
    outcome = service.handle(request)
    assert outcome.event is not None
    return outcome.event


def assert_in_step(service: MatcherService, store: MemoryStore) -> None:
    """The matcher's gallery holds exactly what the store holds."""
    _, snapshot = store.templates_snapshot(MODEL)
    live = service.gallery(MODEL, 128)
    assert sorted(live.people) == sorted(snapshot)
    for name, rows in snapshot.items():
        assert sorted(map(bytes, live.templates_of(name))) == sorted(map(bytes, rows))


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    for i, name in enumerate(("alice", "bob", "carol")):
        store.add_templates(name, unit(i, 2), MODEL)
    store.set_door(DoorPolicy("hall", DoorMode.IDENTIFY, frozenset({EVERYONE}), None, 0.0))
    return store


def test_enrol_revoke_door_change_apply_without_reload(store: MemoryStore) -> None:
    service = make(store)
    state = service.state
    assert ask(service, store, unit(0)[0]).person == "alice"
    assert (state.reloads, state.applied_changes) == (1, 0)
    base = store.gallery_version()

    store.add_templates("dave", unit(10, 2), MODEL)  # a new person
    event = ask(service, store, unit(10, 2)[1])
    assert (event.decision, event.person) == (Decision.OPEN, "dave")
    store.add_templates("alice", unit(11), MODEL)  # more templates for alice
    assert ask(service, store, unit(11)[0]).person == "alice"
    store.remove_person("bob")  # erasure
    event = ask(service, store, unit(1)[0])
    assert event.decision is Decision.DENY and event.person != "bob"
    assert state.applied_version == store.gallery_version() == base + 3
    assert (state.reloads, state.applied_changes) == (1, 3)
    assert service.gallery(MODEL, 128).count_of("alice") == 3
    assert_in_step(service, store)

    # door change: only that door is read again; the threshold follows
    store.set_door(DoorPolicy("hall", DoorMode.IDENTIFY, frozenset({"carol"}), None, 0.0))
    event = ask(service, store, unit(0)[0])
    assert (event.decision, event.reason, event.person) == (
        Decision.DENY,
        "not_allowed_here",
        "alice",
    )
    assert (state.reloads, state.applied_changes) == (1, 4)


def test_calibrated_threshold_follows_each_change(store: MemoryStore) -> None:
    """The door's threshold is always the one calibrated for the gallery
    as it is after the change (as if rebuilt from the store)."""
    service = make(store)
    ask(service, store, unit(0)[0])
    for step in range(6):
        if step % 2:
            store.remove_person(f"extra{step - 1}")
        else:
            store.add_templates(f"extra{step}", unit(20 + step, 40), MODEL)
        service.state.refresh()
        policy = service.door("hall")
        assert policy is not None and policy.calibrated
        live = service.gallery(MODEL, 128)
        _, snapshot = store.templates_snapshot(MODEL)
        want = door_threshold(policy, Gallery.from_mapping(snapshot))
        assert service.threshold(policy, live, MODEL) == pytest.approx(want, abs=1e-12)
    assert service.state.reloads == 1


def test_gap_in_the_stream_reloads_once(store: MemoryStore) -> None:
    store.changes_maxlen = 4
    service = make(store)
    ask(service, store, unit(0)[0])
    for i in range(10):  # more changes than the stream keeps
        store.add_templates(f"p{i}", unit(30 + i), MODEL)
    store.remove_person("alice")
    assert ask(service, store, unit(35)[0]).person == "p5"
    assert service.state.reloads == 2 and service.state.applied_changes == 0
    assert_in_step(service, store)
    store.add_templates("zoe", unit(50), MODEL)  # back to incremental
    assert ask(service, store, unit(50)[0]).person == "zoe"
    assert (service.state.reloads, service.state.applied_changes) == (2, 1)


def test_version_going_back_reloads(store: MemoryStore) -> None:
    service = make(store)
    ask(service, store, unit(0)[0])
    emptied = MemoryStore()  # a restored (older) Redis: version 2, alice gone
    emptied.add_templates("bob", unit(1, 2), MODEL)
    emptied.set_door(DoorPolicy("hall", DoorMode.IDENTIFY, frozenset({EVERYONE}), None, 0.0))
    service.store = service.state.store = emptied
    event = ask(service, emptied, unit(0)[0])
    assert event.person != "alice"
    assert service.state.reloads == 2
    assert_in_step(service, emptied)


class Mangled:
    """A store whose change records come duplicated and out of order."""

    def __init__(self, inner: MemoryStore, how: str) -> None:
        self.inner, self.how = inner, how

    def gallery_changes(self, after: int, limit: int = 1000) -> GalleryChanges:
        read = self.inner.gallery_changes(after, limit)
        changes = list(read.changes)
        if self.how == "duplicated":
            changes = [c for c in changes for _ in (0, 1)]
        else:
            random.Random(1).shuffle(changes)
            changes.reverse()
        return replace(read, changes=tuple(changes))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("how", ["duplicated", "shuffled"])
def test_duplicate_or_out_of_order_records_cannot_corrupt(store: MemoryStore, how: str) -> None:
    service = make(Mangled(store, how))
    ask(service, store, unit(0)[0])
    store.add_templates("dave", unit(40), MODEL)
    store.add_templates("erin", unit(41), MODEL)
    store.remove_person("bob")
    assert ask(service, store, unit(40)[0]).person == "dave"
    assert ask(service, store, unit(1)[0]).person != "bob"
    assert_in_step(service, store)
    assert service.state.reloads == 2  # not consecutive: read everything again


def test_applying_records_again_changes_nothing(store: MemoryStore) -> None:
    service = make(store)
    ask(service, store, unit(0)[0])
    store.add_templates("dave", unit(40), MODEL)
    store.remove_person("bob")
    store.add_templates("alice", unit(42), MODEL)
    service.state.refresh()
    records = store.gallery_changes(0).changes
    with service.state._apply_lock:
        service.state._apply(records[::-1])  # old and out of order, applied again
        service.state._apply(records)
    assert_in_step(service, store)


def test_revocation_committed_before_a_request_is_never_matched(store: MemoryStore) -> None:
    """Threads decide while others enrol and revoke: a decision whose
    request was read after a revocation returned never names that person;
    one read after an enrolment returned finds them."""
    service = make(store)
    ask(service, store, unit(0)[0])
    failures: list[str] = []
    stop = threading.Event()

    def decider(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            ask(service, store, unit(int(rng.integers(0, 3)))[0])

    deciders = [threading.Thread(target=decider, args=(s,)) for s in range(3)]
    for t in deciders:
        t.start()
    try:
        for i in range(40):
            name = f"guest{i}"
            store.add_templates(name, unit(100 + i, 2), MODEL)
            if ask(service, store, unit(100 + i, 2)[0]).person != name:
                failures.append(f"{name} not found after enrolment")
            store.remove_person(name)
            if ask(service, store, unit(100 + i, 2)[0]).person == name:
                failures.append(f"{name} matched after revocation")
    finally:
        stop.set()
        for t in deciders:
            t.join()
    assert failures == []
    assert service.state.reloads == 1 and service.state.applied_changes == 80


def test_a_group_change_recomputes_a_group_doors_threshold(store: MemoryStore) -> None:
    """A door that admits a group: its calibrated threshold counts the
    group's members, so adding one moves it (applied from a ``group``
    record, no reload), and the member is then let in."""
    store.add_group("staff")
    store.add_member("staff", "alice")
    rules = (AccessRule(RuleKind.GROUP, "staff"),)
    store.set_door(DoorPolicy("lab", DoorMode.IDENTIFY, frozenset(), None, 0.0, rules=rules))
    service = make(store)
    state = service.state
    assert ask(service, store, unit(0)[0], door="lab").person == "alice"
    policy = service.door("lab")
    assert policy is not None
    gallery = service.gallery(MODEL, 128)
    one = state.threshold(policy, gallery, MODEL)
    only_alice = Gallery.from_mapping({"alice": store.templates_snapshot(MODEL)[1]["alice"]})
    assert one == door_threshold(policy, only_alice, groups_of=store.groups_of)
    assert one < door_threshold(policy, only_alice)  # without memberships: nobody counted
    denied = ask(service, store, unit(1)[0], door="lab")
    assert (denied.decision, denied.reason.value) == (Decision.DENY, "not_allowed_here")

    store.add_member("staff", "bob")
    granted = ask(service, store, unit(1)[0], door="lab")
    assert (granted.decision, granted.person) == (Decision.OPEN, "bob")
    two = state.threshold(policy, gallery, MODEL)
    assert two < one  # twice the templates behind the door: a stricter threshold
    assert state.reloads == 1
