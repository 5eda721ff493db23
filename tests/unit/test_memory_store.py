"""The in-memory store fake keeps the store contract, plus expiry on its clock."""

from __future__ import annotations

import numpy as np
import pytest
from store_contract import KEY, UID, StoreContract, event

from facegate.adapters.memory_store import MemoryStore
from facegate.core import keys
from facegate.core.errors import RedisUnavailableError
from facegate.core.signing import sign_event

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore(stream_maxlen=100)


def test_entries_expire_on_the_clock() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock, decision_ttl_s=100)
    store.put_probe(UID, np.ones((1, 128), np.float32), "m", ttl_s=10)
    key = keys.upload_object_key("front", "cam", UID, "jpg")
    store.put_claim(UID, key=key, door="front", camera="cam", badge=None, ttl_s=20)
    ev = event()
    assert store.record_decision(sign_event(ev, KEY), ev)
    clock.now += 10
    assert store.get_probe(UID) is None
    assert store.get_claim(UID) is not None
    clock.now += 10
    assert store.get_claim(UID) is None
    store.mark_enqueued(UID, 1.0)  # after expiry: still nothing
    assert store.get_claim(UID) is None
    clock.now += 80
    assert store.get_decision(UID) is None
    assert store.record_decision(sign_event(ev, KEY), ev)  # the gate expired too


def test_publishes_to_subscribers_once() -> None:
    store = MemoryStore()
    seen: list[tuple[str, bytes]] = []
    store.subscribers.append(lambda channel, wire: seen.append((channel, wire)))
    ev = event()
    wire = sign_event(ev, KEY)
    store.record_decision(wire, ev)
    store.record_decision(wire, ev)
    assert seen == [(keys.door_channel("front"), wire)] == store.published


def test_streams_are_capped() -> None:
    store = MemoryStore(stream_maxlen=10)
    for _ in range(50):
        ev = event(upload_id=keys.new_upload_id())
        store.record_decision(sign_event(ev, KEY), ev)
    assert len(store.read_log("front", count=1000)) == 10


def test_unavailable_is_transient() -> None:
    store = MemoryStore()
    store.available = False
    with pytest.raises(RedisUnavailableError):
        store.get_door("front")
    with pytest.raises(RedisUnavailableError):
        store.record_decision(b"{}", event())
