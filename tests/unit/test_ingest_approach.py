"""Ingest carries the approach id (several frames of one passage) from the
presign request or the direct upload, through the claim, into the encode
request, whichever way ingest learns of the object (webhook, direct upload,
reconciler); a malformed approach id is refused before anything is stored,
and the door and media checks apply to frames as to any upload. An
unclaimed object is never a frame: the approach id lives in claims only."""

from __future__ import annotations

import json

import pytest
from secrets_env import with_secrets

from facegate.adapters.memory_objects import MemoryObjectStore
from facegate.adapters.memory_store import MemoryStore
from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from services.ingest.service import IngestApp, UnknownDoorError, UnsupportedMediaError
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

CAM = "camera-token-for-unit-tests-0123"
HOOK = "webhook-token-for-unit-tests-0123"
BUCKET = "facegate-uploads"
NOW = 1_796_143_900.0


class World:
    def __init__(self) -> None:
        settings = IngestSettings.from_env(with_secrets(camera_token=CAM, webhook_token=HOOK))
        self.clock = [NOW]
        self.claims = MemoryStore(clock=lambda: self.clock[0])
        self.claims.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), frames=3))
        self.objects = MemoryObjectStore(BUCKET, clock=lambda: self.clock[0])
        self.sent: list[EncodeRequest] = []
        self.denied: list[MatchRequest] = []
        self.app = IngestApp(
            settings,
            self.objects,
            self.claims,
            self.sent.append,
            self.denied.append,
            clock=lambda: self.clock[0],
        )

    def put(self, key: str) -> None:
        """The camera's PUT (the object store writes it now)."""
        self.objects.put(key, b"\xff\xd8jpeg", "image/jpeg")


def body(key: str) -> bytes:
    return json.dumps(
        {"event_type": "create", "key": f"/buckets/{BUCKET}/{key}", "message": {"new_entry": {}}}
    ).encode()


@pytest.fixture
def world() -> World:
    return World()


def test_presign_binds_the_approach_to_each_frame(world: World) -> None:
    approach = keys.new_upload_id()
    tickets = [
        world.app.presign("lobby", "cam1", None, CAM, approach=approach) for _ in range(3)
    ]
    for ticket in tickets:
        claim = world.claims.get_claim(ticket.upload_id)
        assert claim is not None and claim.approach == approach
        world.put(ticket.key)
        world.app.handle_event(body(ticket.key), HOOK)
    assert [r.approach for r in world.sent] == [approach] * 3
    assert len({r.upload_id for r in world.sent}) == 3  # one upload, one decision, per frame
    assert all(r.stamps["uploaded"] == NOW for r in world.sent)  # written-at, from the object
    single = world.app.presign("lobby", "cam1", None, CAM)
    world.put(single.key)
    world.app.handle_event(body(single.key), HOOK)
    assert world.sent[-1].approach is None
    assert world.denied == []


def test_a_frames_claim_lives_as_long_as_any_other(world: World) -> None:
    ticket = world.app.presign("lobby", "cam1", None, CAM, approach=keys.new_upload_id())
    world.clock[0] += world.app.claim_ttl_s - 1
    assert world.claims.get_claim(ticket.upload_id) is not None
    world.clock[0] += 2
    assert world.claims.get_claim(ticket.upload_id) is None


def test_direct_upload_carries_the_approach(world: World) -> None:
    approach = keys.new_upload_id()
    uploaded = world.app.upload(
        "lobby", "cam1", None, b"jpeg", "image/jpeg", CAM, approach, received=NOW - 0.5
    )
    assert world.sent[-1].approach == approach
    assert world.sent[-1].stamps["uploaded"] == NOW - 0.5
    claim = world.claims.get_claim(uploaded.upload_id)
    assert claim is not None and claim.direct and claim.approach == approach


def test_the_reconciler_sends_a_forgotten_frame_with_its_approach(world: World) -> None:
    approach = keys.new_upload_id()
    ticket = world.app.presign("lobby", "cam1", None, CAM, approach=approach)
    world.put(ticket.key)  # its webhook never comes
    info = world.objects.stat(ticket.key)
    assert info is not None
    assert world.app.reconcile(info) == ticket.upload_id
    assert world.sent[-1].approach == approach


def test_an_unclaimed_object_is_decided_on_its_own(world: World) -> None:
    """Written with S3 keys under a frame's door and camera: no claim, so no
    approach (nothing the object's writer controls joins it to one)."""
    approach = keys.new_upload_id()
    world.app.presign("lobby", "cam1", None, CAM, approach=approach)
    forged = keys.upload_object_key("lobby", "cam1", keys.new_upload_id())
    world.put(forged)
    world.app.handle_event(body(forged), HOOK)
    assert world.sent == []
    [denied] = world.denied
    assert denied.error is Reason.UNCLAIMED and denied.approach is None


@pytest.mark.parametrize("bad", ["short", "../../etc", "G" * 32, "A" * 32])
def test_malformed_approach_is_refused(world: World, bad: str) -> None:
    with pytest.raises(BadMessageError):
        world.app.presign("lobby", "cam1", None, CAM, approach=bad)
    with pytest.raises(BadMessageError):
        world.app.check_upload("lobby", "cam1", "image/jpeg", None, bad)  # before the body
    with pytest.raises(BadMessageError):
        world.app.upload("lobby", "cam1", None, b"jpeg", "image/jpeg", CAM, bad)
    assert world.sent == [] and world.denied == []
    assert world.objects.keys() == []


def test_frames_get_the_door_and_media_checks(world: World) -> None:
    approach = keys.new_upload_id()
    with pytest.raises(UnknownDoorError):
        world.app.presign("vault", "cam1", None, CAM, approach=approach)
    with pytest.raises(UnsupportedMediaError):
        world.app.presign("lobby", "cam1", None, CAM, "gif", approach=approach)
    with pytest.raises(UnknownDoorError):
        world.app.upload("vault", "cam1", None, b"jpeg", "image/jpeg", CAM, approach)
    with pytest.raises(UnsupportedMediaError):
        world.app.upload("lobby", "cam1", None, b"GIF89a", "image/gif", CAM, approach)
    assert world.sent == [] and world.objects.keys() == []
