"""IngestApp on the in-memory stores: tokens, doors, media types, claims,
freshness stamps, unclaimed uploads, duplicates, failures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_objects import MemoryObjectStore
from facegate.adapters.memory_store import MemoryStore
from facegate.adapters.objectstore import ObjectInfo
from facegate.core import keys
from facegate.core.errors import BadMessageError, RedisUnavailableError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.core.policy import DoorMode, DoorPolicy
from services.ingest.service import (
    CLAIM_GRACE_S,
    EnqueueUnavailableError,
    IngestApp,
    UnauthorizedError,
    UnknownDoorError,
    UnsupportedMediaError,
    ext_for,
    image_ext,
)
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

CAM = "camera-token-for-unit-tests-0123"
HOOK = "webhook-token-for-unit-tests-0123"
BUCKET = "facegate-uploads"
NOW = 1_796_143_900.0

T = TypeVar("T")


@dataclass
class Sender(Generic[T]):
    sent: list[T] = field(default_factory=list)
    broken: bool = False

    def __call__(self, request: T) -> object:
        if self.broken:
            raise ConnectionError("broker down")
        self.sent.append(request)
        return None


@dataclass
class World:
    app: IngestApp
    claims: MemoryStore
    objects: MemoryObjectStore
    sender: Sender[EncodeRequest]
    matches: Sender[MatchRequest]
    clock: list[float]


def make_world(**settings: str) -> World:
    env = with_secrets(camera_token=CAM, webhook_token=HOOK, **settings)
    clock = [NOW]
    claims = MemoryStore(clock=lambda: clock[0])
    for door in ("front", "lobby", "side"):
        claims.set_door(DoorPolicy(door, DoorMode.VERIFY, frozenset({"alice"}), 0.6))
    objects = MemoryObjectStore(BUCKET, clock=lambda: clock[0])
    sender: Sender[EncodeRequest] = Sender()
    matches: Sender[MatchRequest] = Sender()
    app = IngestApp(
        IngestSettings.from_env(env), objects, claims, sender, matches, clock=lambda: clock[0]
    )
    return World(app, claims, objects, sender, matches, clock)


@pytest.fixture
def world() -> World:
    return make_world()


def seaweed_body(key: str, bucket: str = BUCKET, written_ns: int | None = None) -> bytes:
    entry: dict[str, Any] = {"name": key.rsplit("/", 1)[-1], "attributes": {}}
    if written_ns is not None:
        entry["chunks"] = [{"size": 4, "modified_ts_ns": written_ns}]
    return json.dumps(
        {"event_type": "create", "key": f"/buckets/{bucket}/{key}", "message": {"new_entry": entry}}
    ).encode()


def minio_body(key: str, event_time: str | None = None) -> bytes:
    record: dict[str, Any] = {
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 3}},
    }
    if event_time is not None:
        record["eventTime"] = event_time
    return json.dumps({"EventName": "s3:ObjectCreated:Put", "Records": [record]}).encode()


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


def test_presign_refuses_unknown_doors_and_other_media(world: World) -> None:
    with pytest.raises(UnknownDoorError):
        world.app.presign("vault", "cam1", None, CAM)
    for ext in ("gif", "svg", "bin", "exe", "tiff", ""):
        with pytest.raises(UnsupportedMediaError):
            world.app.presign("front", "cam1", None, CAM, ext)
    with pytest.raises(UnsupportedMediaError):
        world.app.presign("front", "cam1", None, CAM, "png", content_type="image/jpeg")
    with pytest.raises(UnsupportedMediaError):
        world.app.presign("front", "cam1", None, CAM, "jpg", content_type="text/html")
    assert world.objects.presigned == []
    ticket = world.app.presign("front", "cam1", None, CAM, "JPEG", content_type="image/jpeg")
    assert ticket.key.endswith(".jpeg")
    assert image_ext(".Png") == "png"


def test_the_bucket_event_enqueues_once_with_the_claimed_badge(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    world.objects.put(ticket.key, b"jpeg", "image/jpeg")
    world.clock[0] = NOW + 1.0
    result = world.app.handle_event(seaweed_body(ticket.key, written_ns=int(NOW * 1e9)), HOOK)
    assert result.enqueued == [ticket.upload_id] and result.duplicates == 0
    (request,) = world.sender.sent
    assert (request.kind, request.door, request.camera, request.badge) == (
        UploadKind.ACCESS,
        "front",
        "cam1",
        "alice",
    )
    # written-at from the event body, not from when ingest heard of it
    assert request.stamps == {"uploaded": pytest.approx(NOW), "ingested": NOW + 1.0}
    claim = world.claims.get_claim(ticket.upload_id)
    assert claim is not None and claim.enqueued_at == NOW + 1.0
    assert world.claims.is_pending(ticket.upload_id)
    again = world.app.handle_event(minio_body(ticket.key), HOOK)  # replayed, other shape
    assert again.enqueued == [] and again.duplicates == 1
    assert len(world.sender.sent) == 1 and world.matches.sent == []


def test_without_a_time_in_the_body_the_object_says_when_it_was_written(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    world.clock[0] = NOW + 3.4
    world.objects.put(ticket.key, b"jpeg", "image/jpeg")  # Last-Modified: whole seconds
    world.clock[0] = NOW + 9.0
    world.app.handle_event(minio_body(ticket.key), HOOK)
    assert world.sender.sent[0].stamps["uploaded"] == NOW + 3.0


def test_a_late_webhook_carries_the_objects_own_time(world: World) -> None:
    """Ingest was down; the store delivers (or an attacker replays) the event
    a minute later: the request says the object is a minute old."""
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    world.objects.put(ticket.key, b"jpeg", "image/jpeg")
    world.clock[0] = NOW + 60.0
    world.app.handle_event(minio_body(ticket.key, "2026-12-01T16:51:40.000Z"), HOOK)
    request = world.sender.sent[0]
    assert request.stamps["uploaded"] == pytest.approx(NOW)  # 16:51:40Z is NOW
    assert request.stamps["ingested"] - request.stamps["uploaded"] == pytest.approx(60.0)


def test_an_event_for_a_missing_object_has_no_written_at(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    world.app.handle_event(minio_body(ticket.key), HOOK)  # no object, no time: timeout later
    assert "uploaded" not in world.sender.sent[0].stamps


def test_an_object_without_a_claim_is_denied_unclaimed(world: World) -> None:
    upload_id = keys.new_upload_id()
    key = keys.upload_object_key("lobby", "cam2", upload_id)
    world.objects.put(key, b"jpeg", "image/jpeg")
    result = world.app.handle_event(seaweed_body(key, written_ns=int(NOW * 1e9)), HOOK)
    assert result.enqueued == [upload_id]
    assert world.sender.sent == []  # never encoded
    (denied,) = world.matches.sent
    assert (denied.upload_id, denied.door, denied.camera) == (upload_id, "lobby", "cam2")
    assert (denied.error, denied.kind, denied.badge) == (Reason.UNCLAIMED, UploadKind.ACCESS, None)
    assert denied.stamps["uploaded"] == pytest.approx(NOW)
    assert world.claims.is_pending(upload_id)


def test_a_claim_for_another_key_is_not_used(world: World) -> None:
    ticket = world.app.presign("front", "cam1", "alice", CAM, "jpg")
    forged = keys.upload_object_key("front", "cam1", ticket.upload_id, "png")
    world.app.handle_event(seaweed_body(forged), HOOK)
    assert world.sender.sent == []
    assert [m.error for m in world.matches.sent] == [Reason.UNCLAIMED]


def test_a_decided_upload_is_never_sent_again(world: World) -> None:
    from facegate.core.messages import Decision, DoorEvent

    ticket = world.app.presign("front", "cam1", "alice", CAM)
    event = DoorEvent(
        id=keys.new_upload_id(), upload_id=ticket.upload_id, door="front",
        decision=Decision.DENY, reason=Reason.TIMEOUT, issued_at=NOW, expires_at=NOW + 30,
    )  # fmt: skip
    world.claims.record_decision(event, DoorEvent.to_json)
    result = world.app.handle_event(seaweed_body(ticket.key), HOOK)
    assert (result.enqueued, result.duplicates) == ([], 1)
    unclaimed = keys.upload_object_key("front", "cam1", keys.new_upload_id())
    world.claims.record_decision(event.__class__.from_dict(
        {**event.to_dict(), "upload_id": keys.parse_upload_key(unclaimed)[2]}),
        DoorEvent.to_json)  # fmt: skip
    assert world.app.handle_event(seaweed_body(unclaimed), HOOK).duplicates == 1
    assert world.sender.sent == [] and world.matches.sent == []


def test_other_buckets_prefixes_and_keys_are_ignored(world: World) -> None:
    uid = keys.new_upload_id()
    result = world.app.handle_event(
        seaweed_body(keys.upload_object_key("f", "c", uid), bucket="other"), HOOK
    )
    assert result.ignored == 1
    assert world.app.handle_event(seaweed_body("enroll/alice/x.jpg"), HOOK).ignored == 1
    assert world.app.handle_event(seaweed_body("uploads/front/../../x.jpg"), HOOK).ignored == 1
    assert world.sender.sent == [] and world.matches.sent == []
    with pytest.raises(BadMessageError):
        world.app.handle_event(b"not json", HOOK)


def test_direct_upload_stores_enqueues_and_drops_its_own_webhook(world: World) -> None:
    uploaded = world.app.upload(
        "front", "cam1", "bob", b"\xff\xd8jpeg", "image/jpeg", CAM, received=NOW - 0.25
    )
    assert world.objects.get(uploaded.key, 100) == b"\xff\xd8jpeg"
    assert uploaded.key.endswith(".jpg")
    (request,) = world.sender.sent
    assert request.badge == "bob" and request.upload_id == uploaded.upload_id
    assert request.stamps["uploaded"] == NOW - 0.25  # when the bytes arrived
    claim = world.claims.get_claim(uploaded.upload_id)
    assert claim is not None and claim.direct
    result = world.app.handle_event(seaweed_body(uploaded.key), HOOK)
    assert result.duplicates == 1 and len(world.sender.sent) == 1


def test_direct_upload_refuses_unknown_doors_and_other_media(world: World) -> None:
    with pytest.raises(UnknownDoorError):
        world.app.upload("vault", "cam1", None, b"\xff\xd8", "image/jpeg", CAM)
    for content_type in (None, "", "text/plain", "image/gif", "application/octet-stream",
                         "image/svg+xml"):  # fmt: skip
        with pytest.raises(UnsupportedMediaError):
            world.app.upload("front", "cam1", None, b"\xff\xd8", content_type, CAM)
    assert world.objects.keys() == [] and world.sender.sent == []
    assert ext_for("image/png; charset=x") == "png" and ext_for("IMAGE/JPEG") == "jpg"
    uploaded = world.app.upload("front", "cam1", None, b"RIFF", "image/webp", CAM)
    assert uploaded.key.endswith(".webp")


def test_direct_upload_limits(world: World) -> None:
    with pytest.raises(BadMessageError, match="empty"):
        world.app.upload("front", "cam1", None, b"", "image/jpeg", CAM)
    big = b"x" * (world.app.settings.max_upload_bytes + 1)
    with pytest.raises(BadMessageError, match="exceeds"):
        world.app.upload("front", "cam1", None, big, "image/jpeg", CAM)
    assert world.objects.keys() == [] and world.sender.sent == []


def test_broker_down_is_a_retryable_error_and_the_upload_stays_pending(world: World) -> None:
    ticket = world.app.presign("front", "cam1", None, CAM)
    world.sender.broken = True
    with pytest.raises(EnqueueUnavailableError):
        world.app.handle_event(seaweed_body(ticket.key), HOOK)
    claim = world.claims.get_claim(ticket.upload_id)
    assert claim is not None and claim.enqueued_at is None  # the retry is not a duplicate
    assert not world.claims.is_pending(ticket.upload_id)  # and the reconciler would find it
    world.sender.broken = False
    assert world.app.handle_event(seaweed_body(ticket.key), HOOK).enqueued == [ticket.upload_id]


def test_broker_down_for_an_unclaimed_upload_is_retryable_too(world: World) -> None:
    key = keys.upload_object_key("front", "cam1", keys.new_upload_id())
    world.matches.broken = True
    with pytest.raises(EnqueueUnavailableError):
        world.app.handle_event(seaweed_body(key), HOOK)
    assert not world.claims.is_pending(keys.parse_upload_key(key)[2])


def test_redis_down_while_reading_the_claim_is_retryable(world: World) -> None:
    ticket = world.app.presign("front", "cam1", None, CAM)
    world.claims.available = False
    with pytest.raises(RedisUnavailableError):
        world.app.handle_event(seaweed_body(ticket.key), HOOK)
    assert world.sender.sent == []


def test_claim_outlives_url_deadline_and_skew() -> None:
    world = make_world(deadline_s="10", clock_skew_s="2")
    ticket = world.app.presign("front", "cam1", "alice", CAM)
    life = ticket.expires_in + 10 + 2 + CLAIM_GRACE_S
    assert world.app.claim_ttl_s == life
    world.clock[0] = NOW + life - 1
    assert world.claims.get_claim(ticket.upload_id) is not None
    world.clock[0] = NOW + life
    assert world.claims.get_claim(ticket.upload_id) is None


def test_reconcile_sends_a_direct_upload_whose_enqueue_never_happened(world: World) -> None:
    """A direct upload whose ingest died between the PUT and the send: the
    webhook is dropped as 'handled by the direct upload', the reconciler is not."""
    upload_id = keys.new_upload_id()
    key = keys.upload_object_key("front", "cam1", upload_id)
    world.claims.put_claim(upload_id, key=key, door="front", camera="cam1", badge="bob",
                           ttl_s=600, direct=True)  # fmt: skip
    world.objects.put(key, b"\xff\xd8", "image/jpeg")
    assert world.app.handle_event(seaweed_body(key), HOOK).duplicates == 1
    info = world.objects.stat(key)
    assert isinstance(info, ObjectInfo)
    assert world.app.reconcile(info) == upload_id
    assert [r.badge for r in world.sender.sent] == ["bob"]


def test_health_is_liveness_and_ready_needs_redis(world: World) -> None:
    """/healthz (liveness) touches no backend; /readyz needs Redis and the store."""
    assert world.app.ready()["status"] == "ready"
    world.claims.available = False
    assert world.app.health()["status"] == "ok"
    with pytest.raises(RedisUnavailableError):
        world.app.ready()
