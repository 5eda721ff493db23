"""RedisStore against a real Redis (fixtures of tests/integration/conftest.py):
the store contract (tests/store_contract.py, also run on the in-memory fake)
plus what only Redis shows (TTLs, pub/sub, corrupt hashes, capped streams)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis
from store_contract import UID, Heard, StoreContract, sign

from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.errors import BadMessageError, RedisUnavailableError
from facegate.core.messages import Decision, DoorEvent, Reason

pytestmark = pytest.mark.integration


class TestRedisStoreContract(StoreContract):
    """The same behaviours as the in-memory fake, on real Redis."""


@pytest.fixture
def store(redis_url: str, redis_client: redis.Redis) -> Iterator[RedisStore]:
    """A store on its own bytes client; ``redis_client`` flushed the db."""
    store = RedisStore.from_url(redis_url, stream_maxlen=100)
    yield store
    store.close()


@pytest.fixture
def heard(redis_url: str) -> Iterator[Heard]:
    """A subscriber to every door's channel, confirmed before the test runs;
    ``heard(door)``: what it received for that door so far, in order."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0)
    pubsub = client.pubsub()
    pubsub.psubscribe(f"{keys.PREFIX}:door:*:events")
    confirmed = pubsub.get_message(timeout=5.0)
    assert confirmed is not None and confirmed["type"] == "psubscribe"
    seen: list[tuple[str, bytes]] = []

    def drain(door: str) -> list[bytes]:
        while (msg := pubsub.get_message(timeout=0.2)) is not None:
            assert msg["type"] == "pmessage"
            seen.append((msg["channel"].decode(), bytes(msg["data"])))
        return [wire for channel, wire in seen if channel == keys.door_channel(door)]

    yield drain
    pubsub.close()
    client.close()


@pytest.fixture
def raw(store: RedisStore) -> redis.Redis:
    """Direct access to the same database (bytes replies)."""
    return store.client


def event(upload_id: str = UID, door: str = "front", **over: object) -> DoorEvent:
    fields: dict[str, object] = {
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
    return DoorEvent(**fields)  # type: ignore[arg-type]


def test_probe_round_trip_and_ttl(store: RedisStore, raw: redis.Redis) -> None:
    enc = np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32)
    boxes = [
        {"left": 1, "top": 2, "right": 3, "bottom": 4},
        {"left": 5, "top": 6, "right": 7, "bottom": 8},
    ]
    store.put_probe(UID, enc, "model-a", ttl_s=60, boxes=boxes)
    probe = store.get_probe(UID)
    assert probe is not None
    assert probe.model_id == "model-a"
    assert probe.faces == 2
    np.testing.assert_array_equal(probe.encodings, enc)
    assert probe.boxes[1]["right"] == 7
    assert 0 < raw.ttl(keys.probe_key(UID)) <= 60
    # an empty probe (no face) keeps its dimension
    other = keys.new_upload_id()
    store.put_probe(other, np.zeros((0, 128), np.float32), "model-a", ttl_s=60)
    empty = store.get_probe(other)
    assert empty is not None and empty.encodings.shape == (0, 128)
    assert store.get_probe(keys.new_upload_id()) is None


def test_corrupt_probe_is_refused(store: RedisStore, raw: redis.Redis) -> None:
    store.put_probe(UID, np.ones((1, 128), np.float32), "m", ttl_s=60)
    raw.hset(keys.probe_key(UID), "enc:0", b"\x00" * 10)
    with pytest.raises(BadMessageError, match="bytes"):
        store.get_probe(UID)
    raw.hset(keys.probe_key(UID), "faces", "2")
    with pytest.raises(BadMessageError):
        store.get_probe(UID)


def test_claims(store: RedisStore, raw: redis.Redis) -> None:
    key = keys.upload_object_key("front", "cam", UID, "jpg")
    store.put_claim(UID, key=key, door="front", camera="cam", badge="alice", ttl_s=120)
    claim = store.get_claim(UID)
    assert claim is not None and (claim.key, claim.badge) == (key, "alice")
    assert 60 < raw.ttl(keys.claim_key(UID)) <= 120
    other = keys.new_upload_id()
    store.put_claim(other, key="k", door="front", camera="cam", badge=None, ttl_s=60)
    got = store.get_claim(other)
    assert got is not None and got.badge is None
    assert store.get_claim(keys.new_upload_id()) is None


def test_record_decision_exactly_once(store: RedisStore, raw: redis.Redis) -> None:
    pubsub = raw.pubsub()
    pubsub.subscribe(keys.door_channel("front"))
    assert pubsub.get_message(timeout=1.0) is not None  # subscribe confirmation
    recorded = store.record_decision(event(), sign)
    assert recorded is not None
    wire = recorded.wire
    assert store.record_decision(event(reason=Reason.TIMEOUT), sign) is None
    assert store.get_decision(UID) == wire
    assert raw.xlen(keys.door_stream("front")) == 1
    ((entry_id, _),) = raw.xrange(keys.door_stream("front"))
    assert entry_id.decode() == recorded.event.stream_id  # the signed id is the entry's
    assert raw.xlen(keys.AUDIT_STREAM) == 1
    msg = pubsub.get_message(timeout=1.0)
    assert msg is not None and msg["data"] == wire
    assert pubsub.get_message(timeout=0.2) is None
    pubsub.close()
    assert 0 < raw.ttl(keys.decision_key(UID)) <= 86400


def test_streams_are_capped(raw: redis.Redis) -> None:
    small = RedisStore(raw, stream_maxlen=100)
    for _ in range(1000):
        small.record_decision(event(upload_id=keys.new_upload_id()), sign)
    # MAXLEN ~ trims whole macro nodes: bounded, not exact
    assert raw.xlen(keys.door_stream("front")) < 300


def test_a_stream_id_taken_by_hand_makes_the_event_signed_again_above_it(
    store: RedisStore, raw: redis.Redis
) -> None:
    """Someone (or a matcher with a fast clock) put the door's stream ahead:
    the next decision still lands, above it, signed with its real id; and a
    deleted top entry does not make the script loop (last-generated-id)."""
    raw.xadd(keys.door_stream("front"), {"event": b"junk"}, id="5000000-7")
    raw.xadd(keys.door_stream("front"), {"event": b"junk"}, id="5000000-9")
    raw.xdel(keys.door_stream("front"), "5000000-9")
    recorded = store.record_decision(event(), sign)  # issued_at 1000.0 -> 1000000-0 first
    assert recorded is not None and recorded.event.stream_id == "5000000-10"
    assert raw.xrange(keys.door_stream("front"), min="(5000000-7")[0][0] == b"5000000-10"


def test_a_stream_of_another_type_is_an_error_not_a_loop(
    store: RedisStore, raw: redis.Redis
) -> None:
    raw.set(keys.door_stream("front"), "not a stream")
    with pytest.raises(RedisUnavailableError, match="WRONGTYPE"):
        store.record_decision(event(), sign)
    assert store.get_decision(UID) is None


def test_unreachable_redis_is_transient() -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(RedisUnavailableError):
        dead.get_door("front")
    with pytest.raises(RedisUnavailableError):
        dead.record_decision(event(), sign)


def test_text_clients_are_refused(redis_url: str) -> None:
    text_client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="bytes"):
        RedisStore(text_client)
    text_client.close()
