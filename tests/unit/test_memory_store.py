"""The in-memory store fake keeps the store contract, plus expiry on its clock."""

from __future__ import annotations

import numpy as np
import pytest
from store_contract import UID, Heard, StoreContract, event, sign

from facegate.adapters.memory_store import MemoryStore
from facegate.core import keys
from facegate.core.errors import RedisUnavailableError

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

    @pytest.fixture
    def heard(self, store: MemoryStore) -> Heard:
        return lambda door: [w for c, w in store.published if c == keys.door_channel(door)]


def test_entries_expire_on_the_clock() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock, decision_ttl_s=100)
    store.put_probe(UID, np.ones((1, 128), np.float32), "m", ttl_s=10)
    key = keys.upload_object_key("front", "cam", UID, "jpg")
    store.put_claim(UID, key=key, door="front", camera="cam", badge=None, ttl_s=20)
    ev = event()
    assert store.record_decision(ev, sign)
    clock.now += 10
    assert store.get_probe(UID) is None
    assert store.get_claim(UID) is not None
    clock.now += 10
    assert store.get_claim(UID) is None
    store.mark_enqueued(UID, 1.0)  # after expiry: still nothing
    assert store.get_claim(UID) is None
    clock.now += 80
    assert store.get_decision(UID) is None
    assert store.record_decision(event(), sign)  # the gate expired too


def test_publishes_to_subscribers_once() -> None:
    store = MemoryStore()
    seen: list[tuple[str, bytes]] = []
    store.subscribers.append(lambda channel, wire: seen.append((channel, wire)))
    ev = event()
    recorded = store.record_decision(ev, sign)
    assert recorded is not None
    assert store.record_decision(ev, sign) is None
    assert seen == [(keys.door_channel("front"), recorded.wire)] == store.published


def test_streams_are_capped() -> None:
    store = MemoryStore(stream_maxlen=10)
    for _ in range(50):
        store.record_decision(event(upload_id=keys.new_upload_id()), sign)
    assert len(store.read_log("front", count=1000)) == 10


def test_unavailable_is_transient() -> None:
    store = MemoryStore()
    store.available = False
    with pytest.raises(RedisUnavailableError):
        store.get_door("front")
    with pytest.raises(RedisUnavailableError):
        store.record_decision(event(), sign)
