"""IngestApp on the in-memory stores: tokens, claims, duplicates, failures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_objects import MemoryObjectStore
from facegate.adapters.memory_store import MemoryStore
from facegate.core import keys
from facegate.core.errors import BadMessageError, RedisUnavailableError
from facegate.core.messages import EncodeRequest, UploadKind
from services.ingest.service import (
    CLAIM_GRACE_S,
    EnqueueUnavailableError,
    IngestApp,
    UnauthorizedError,
    ext_for,
)
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

CAM = "camera-token-for-unit-tests-0123"
HOOK = "webhook-token-for-unit-tests-0123"
BUCKET = "facegate-uploads"


@dataclass
class Sender:
    sent: list[EncodeRequest] = field(default_factory=list)
    broken: bool = False

    def __call__(self, request: EncodeRequest) -> object:
        if self.broken:
            raise ConnectionError("broker down")
        self.sent.append(request)
        return None


@dataclass
class World:
    app: IngestApp
    claims: MemoryStore
    objects: MemoryObjectStore
    sender: Sender
    clock: list[float]


@pytest.fixture
def world() -> World:
    settings = IngestSettings.from_env(
        with_secrets(camera_token=CAM, webhook_token=HOOK)
    )
    claims, objects, sender, clock = MemoryStore(), MemoryObjectStore(BUCKET), Sender(), [5000.0]
    app = IngestApp(settings, objects, claims, sender, clock=lambda: clock[0])
    return World(app, claims, objects, sender, clock)


def seaweed_body(key: str, bucket: str = BUCKET) -> bytes:
    return json.dumps(
        {
            "event_type": "create",
            "key": f"/buckets/{bucket}/{key}",
            "message": {"new_entry": {"name": key.rsplit("/", 1)[-1], "attributes": {}}},
        }
    ).encode()


def minio_body(key: str) -> bytes:
    return json.dumps(
        {
            "EventName": "s3:ObjectCreated:Put",
            "Records": [
                {
                    "eventName": "s3:ObjectCreated:Put",
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 3}},
                }
            ],
        }
    ).encode()


def test_tokens_are_checked(world: World) -> None:
    with pytest.raises(UnauthorizedError):
        world.app.presign("front", "cam1", None, None)
    with pytest.raises(UnauthorizedError):
        world.app.presign("front", "cam1", None, HOOK)  # the webhook token is not a camera's
    with pytest.raises(UnauthorizedError):
        world.app.handle_event(seaweed_body("uploads/x"), CAM)
    with pytest.raises(UnauthorizedError):
        world.app.upload("front", "cam1", None, b"x", "image/jpeg", "")
    assert world.sender.sent == [] and world.objects.keys() == []


def test_presign_binds_the_badge_to_one_key(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM, "png")
    assert ticket.key == keys.upload_object_key("front", "cam1", ticket.upload_id, "png")
    assert ticket.key in ticket.url and ticket.expires_in == world.app.settings.presign_expiry_s
    assert world.objects.presigned == [(ticket.key, ticket.expires_in)]
    claim = world.claims.get_claim(ticket.upload_id)
    assert claim is not None and (claim.key, claim.badge, claim.direct) == (
        ticket.key,
        "alice",
        False,
    )
    with pytest.raises(BadMessageError):
        world.app.presign("front", "cam1", "not a name!", CAM)
    with pytest.raises(BadMessageError):
        world.app.presign("a/b", "cam1", None, CAM)


def test_the_bucket_event_enqueues_once_with_the_claimed_badge(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    world.objects.put(ticket.key, b"jpeg", "image/jpeg")
    result = world.app.handle_event(seaweed_body(ticket.key), HOOK)
    assert result.enqueued == [ticket.upload_id] and result.duplicates == 0
    (request,) = world.sender.sent
    assert (request.kind, request.door, request.camera, request.badge) == (
        UploadKind.ACCESS,
        "front",
        "cam1",
        "alice",
    )
    assert request.key == ticket.key and request.stamps["ingested"] == 5000.0
    claim = world.claims.get_claim(ticket.upload_id)
    assert claim is not None and claim.enqueued_at == 5000.0
    again = world.app.handle_event(minio_body(ticket.key), HOOK)  # replayed, other shape
    assert again.enqueued == [] and again.duplicates == 1
    assert len(world.sender.sent) == 1


def test_an_object_without_a_claim_carries_no_badge(world: World) -> None:
    upload_id = keys.new_upload_id()
    key = keys.upload_object_key("lobby", "cam2", upload_id)
    result = world.app.handle_event(seaweed_body(key), HOOK)
    assert result.enqueued == [upload_id]
    assert world.sender.sent[0].badge is None


def test_a_claim_for_another_key_is_not_used(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM, "jpg")
    forged = keys.upload_object_key("front", "cam1", ticket.upload_id, "png")
    world.app.handle_event(seaweed_body(forged), HOOK)
    assert world.sender.sent[0].badge is None


def test_other_buckets_prefixes_and_keys_are_ignored(world: World) -> None:
    uid = keys.new_upload_id()
    result = world.app.handle_event(
        seaweed_body(keys.upload_object_key("f", "c", uid), bucket="other"), HOOK
    )
    assert result.ignored == 1
    assert world.app.handle_event(seaweed_body("enroll/alice/x.jpg"), HOOK).ignored == 1
    assert world.app.handle_event(seaweed_body("uploads/front/../../x.jpg"), HOOK).ignored == 1
    assert world.sender.sent == []
    with pytest.raises(BadMessageError):
        world.app.handle_event(b"not json", HOOK)


def test_direct_upload_stores_enqueues_and_drops_its_own_webhook(world: World) -> None:
    uploaded = world.app.upload("front", "cam1", "bob", b"\xff\xd8jpeg", "image/jpeg", CAM)
    assert world.objects.get(uploaded.key, 100) == b"\xff\xd8jpeg"
    assert uploaded.key.endswith(".jpg")
    (request,) = world.sender.sent
    assert request.badge == "bob" and request.upload_id == uploaded.upload_id
    claim = world.claims.get_claim(uploaded.upload_id)
    assert claim is not None and claim.direct
    result = world.app.handle_event(seaweed_body(uploaded.key), HOOK)
    assert result.duplicates == 1 and len(world.sender.sent) == 1


def test_direct_upload_limits(world: World) -> None:
    with pytest.raises(BadMessageError, match="empty"):
        world.app.upload("front", "cam1", None, b"", "image/jpeg", CAM)
    big = b"x" * (world.app.settings.max_upload_bytes + 1)
    with pytest.raises(BadMessageError, match="exceeds"):
        world.app.upload("front", "cam1", None, big, "image/jpeg", CAM)
    assert world.objects.keys() == [] and world.sender.sent == []
    assert ext_for("image/png; charset=x") == "png" and ext_for("text/plain") == "bin"


def test_broker_down_is_a_retryable_error_and_the_upload_stays_pending(world: World) -> None:
    ticket = world.app.presign("front", "cam1", None, CAM)
    world.sender.broken = True
    with pytest.raises(EnqueueUnavailableError):
        world.app.handle_event(seaweed_body(ticket.key), HOOK)
    claim = world.claims.get_claim(ticket.upload_id)
    assert claim is not None and claim.enqueued_at is None  # the retry is not a duplicate
    world.sender.broken = False
    assert world.app.handle_event(seaweed_body(ticket.key), HOOK).enqueued == [ticket.upload_id]


def test_redis_down_while_reading_the_claim_is_retryable(world: World) -> None:
    ticket = world.app.presign("front", "cam1", None, CAM)
    world.claims.available = False
    with pytest.raises(RedisUnavailableError):
        world.app.handle_event(seaweed_body(ticket.key), HOOK)
    assert world.sender.sent == []


def test_claim_lives_past_the_url(world: World) -> None:
    clock = [0.0]
    world.claims.clock = lambda: clock[0]
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    clock[0] = ticket.expires_in + CLAIM_GRACE_S - 1
    assert world.claims.get_claim(ticket.upload_id) is not None
    clock[0] = ticket.expires_in + CLAIM_GRACE_S
    assert world.claims.get_claim(ticket.upload_id) is None


def test_health(world: World) -> None:
    assert world.app.health()["status"] == "ok"
    world.claims.available = False
    with pytest.raises(RedisUnavailableError):
        world.app.health()
