"""End to end: presigned PUT -> bucket event -> ingest -> Celery -> encoder
(real model) -> Redis -> matcher -> signed event, verified as a lock does.

Every case of the demo, every kind of bad input (each followed by proof that
the workers still serve), a task delivered three times, enrolment refusals,
revocation, the lock's catch-up, and the CLI's camera and log commands.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from e2e_site import Site
from PIL import Image

from facegate.adapters.celery_app import send_encode
from facegate.clients.camera import CameraError
from facegate.clients.lock import DoorListener, Received
from facegate.core import keys
from facegate.core.errors import EnrolmentError
from facegate.core.messages import EncodeRequest, UploadKind
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import DoorSigner

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

WAIT_S = 60.0


# --------------------------------------------------------------------------- inputs


def huge_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small, valid PNG file whose header declares ``width x height``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def flat_png(side: int) -> bytes:
    """One colour, side x side: a real PNG that deflate packs about 1000:1."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


def landscape() -> bytes:
    from facegate.tools.demo import no_face_picture

    return no_face_picture()


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="session")
def photos(samples_dir: Path) -> dict[str, bytes]:
    from facegate.tools.samples import astronaut_path

    out = {n: (samples_dir / n).read_bytes() for n in ("obama.jpg", "obama2.jpg", "obama3.jpg",
                                                        "biden.jpg")}
    out["astronaut.png"] = astronaut_path().read_bytes()
    out["landscape.jpg"] = landscape()
    left = Image.open(io.BytesIO(out["obama.jpg"])).convert("RGB")
    right = Image.open(io.BytesIO(out["biden.jpg"])).convert("RGB")
    left.thumbnail((400, 400))
    right.thumbnail((400, 400))
    canvas = np.zeros((max(left.height, right.height), left.width + right.width, 3), np.uint8)
    canvas[: left.height, : left.width] = np.asarray(left)
    canvas[: right.height, left.width :] = np.asarray(right)
    out["two_people.jpg"] = jpeg(canvas)
    return out


@pytest.fixture(scope="session")
def building(site: Site, photos: dict[str, bytes]) -> Site:
    """Doors configured and residents enrolled through the encoder."""
    site.admin.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset(), 0.6))
    site.admin.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
    site.admin.set_door(DoorPolicy("vault", DoorMode.IDENTIFY, frozenset({"biden"}), 0.6))
    site.admin.enroll("obama", [("obama.jpg", photos["obama.jpg"]),
                                ("obama2.jpg", photos["obama2.jpg"])], doors=["front"])
    site.admin.enroll("biden", [("biden.jpg", photos["biden.jpg"])], doors=["front"])
    return site


def public_key(site: Site, door: str) -> str:
    """What the door's lock is given: its current public key (hex)."""
    secret = site.settings.signing_secret.get_secret_value()
    return str(DoorSigner.derive(secret, door, site.store.door_key_version(door)).public_key.hex)


def snap(
    site: Site,
    door: str,
    data: bytes,
    badge: str | None = None,
    ext: str = "jpg",
    *,
    direct: bool = False,
) -> Received:
    """Upload one snapshot as a camera does and return the event its door's
    lock received and verified."""
    listener = DoorListener(site.redis, door, public_key(site, door))
    sent: dict[str, str] = {}

    def upload() -> None:
        if direct:
            sent["id"] = site.camera.upload(door, "cam1", data, badge=badge)
        else:
            ticket = site.camera.presign(door, "cam1", badge, ext=ext)
            site.camera.put(ticket, data)
            sent["id"] = ticket.upload_id

    for item in listener.listen(timeout_s=WAIT_S, on_subscribed=upload):
        if item.upload_id == sent.get("id"):
            assert item.event is not None, f"event rejected by the lock: {item.rejected}"
            return item
    pytest.fail(
        f"no event for upload {sent.get('id')} at {door} within {WAIT_S} s\n"
        f"encoder:\n{site.log('encoder-1')}\nmatcher:\n{site.log('matcher-1')}"
    )


# --------------------------------------------------------------------------- the story


@pytest.mark.parametrize(
    ("door", "photo", "badge", "decision", "reason", "person"),
    [
        ("front", "obama3.jpg", "obama", "OPEN", "granted", "obama"),
        ("lobby", "obama3.jpg", None, "OPEN", "granted", "obama"),
        ("front", "astronaut.png", "obama", "DENY", "below_threshold", "obama"),
        ("lobby", "astronaut.png", None, "DENY", "unknown_person", None),
        ("lobby", "landscape.jpg", None, "DENY", "no_face", None),
        ("lobby", "two_people.jpg", None, "DENY", "several_faces", None),
        ("vault", "obama3.jpg", None, "DENY", "not_allowed_here", "obama"),
        ("front", "biden.jpg", "biden", "OPEN", "granted", "biden"),
    ],
    ids=["badge-owner", "identified", "impostor-with-badge", "unknown", "no-face",
         "two-faces", "known-not-allowed", "other-resident"],
)
def test_door_story(
    building: Site,
    photos: dict[str, bytes],
    door: str,
    photo: str,
    badge: str | None,
    decision: str,
    reason: str,
    person: str | None,
) -> None:
    item = snap(building, door, photos[photo], badge, ext=photo.rsplit(".", 1)[1])
    event = item.event
    assert event is not None
    assert (event.decision.value, event.reason.value, event.person) == (decision, reason, person)
    assert event.door == door and event.camera == "cam1"
    for stage in ("uploaded", "ingested", "encode_start", "fetched", "decoded", "detected",
                  "embedded", "match_start", "matched", "published"):
        assert stage in event.stamps, stage
    assert event.stamps["uploaded"] <= event.stamps["encode_start"] <= event.stamps["published"]
    assert item.received_at - event.stamps["uploaded"] < 30.0
    if reason in ("granted", "below_threshold"):
        assert event.distance is not None
        assert (event.distance < 0.6) == (decision == "OPEN")


BAD_INPUTS: dict[str, Callable[[dict[str, bytes]], tuple[str, bytes, str | None, str]]] = {
    "truncated-jpeg": lambda p: ("front", p["obama3.jpg"][:3000], "obama", "bad_image"),
    "zero-bytes": lambda p: ("front", b"", "obama", "bad_image"),
    "text-file": lambda p: ("lobby", b"this is not an image\n" * 20, None, "bad_image"),
    "png-50000x50000": lambda p: ("lobby", huge_png(), None, "bad_image"),
    "png-bomb-6000x6000-117KiB": lambda p: ("lobby", flat_png(6000), None, "bad_image"),
    "unknown-badge": lambda p: ("front", p["obama3.jpg"], "nobody", "unknown_person"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_denied_and_the_workers_go_on(
    building: Site, photos: dict[str, bytes], case: str
) -> None:
    door, data, badge, reason = BAD_INPUTS[case](photos)
    ext = "png" if case.startswith("png") else "jpg"
    event = snap(building, door, data, badge, ext=ext).event
    assert event is not None
    assert (event.decision.value, event.reason.value) == ("DENY", reason)
    after = snap(building, "front", photos["obama3.jpg"], "obama").event
    assert after is not None and after.granted
    for name in ("encoder-1", "matcher-1", "ingest"):
        assert building.stack.running_pid(name) is not None, f"{name} died"


def test_unknown_door_is_refused_and_a_removed_one_denied(
    building: Site, photos: dict[str, bytes]
) -> None:
    """Presign refuses a door nobody configured (404); a door removed between
    the URL and the upload still gets its one decision: DENY unknown_door."""
    with pytest.raises(CameraError) as info:
        building.camera.presign("nowhere", "cam1", "obama")
    assert (info.value.status, info.value.code) == (404, "unknown_door")
    building.admin.set_door(DoorPolicy("temporary", DoorMode.VERIFY, frozenset({"obama"}), 0.6))
    ticket = building.camera.presign("temporary", "cam1", "obama")
    building.store.delete_door("temporary")
    building.camera.put(ticket, photos["obama3.jpg"])
    deadline = time.monotonic() + WAIT_S
    while (wire := building.store.get_decision(ticket.upload_id)) is None:
        assert time.monotonic() < deadline, building.log("matcher-1")
        time.sleep(0.1)
    event = json.loads(wire)["event"]
    assert (event["decision"], event["reason"]) == ("DENY", "unknown_door")


def test_direct_upload_for_cameras_without_s3(building: Site, photos: dict[str, bytes]) -> None:
    event = snap(building, "front", photos["obama3.jpg"], "obama", direct=True).event
    assert event is not None and event.granted and event.person == "obama"


def test_task_delivered_three_times_gives_one_decision(
    building: Site, photos: dict[str, bytes]
) -> None:
    """The bucket event enqueues the upload once; we enqueue it twice more."""
    site = building
    upload_id = keys.new_upload_id()
    key = keys.upload_object_key("lobby", "cam9", upload_id)
    # claimed as a presign would (the object is written with S3 credentials below)
    site.store.put_claim(upload_id, key=key, door="lobby", camera="cam9", badge=None, ttl_s=300)
    request = EncodeRequest(
        upload_id=upload_id, kind=UploadKind.ACCESS, bucket=site.settings.bucket, key=key,
        door="lobby", camera="cam9", stamps={"uploaded": time.time()},
    )
    listener = DoorListener(site.redis, "lobby", public_key(site, "lobby"))
    received = []

    def deliver() -> None:
        site.objects.put(key, photos["obama3.jpg"], "image/jpeg")
        send_encode(site.celery, request)  # type: ignore[arg-type]
        send_encode(site.celery, request)  # type: ignore[arg-type]

    for item in listener.listen(timeout_s=8.0, on_subscribed=deliver):
        if item.upload_id == upload_id:
            received.append(item)
    assert len(received) == 1, [r.event for r in received]
    assert received[0].event is not None and received[0].event.person == "obama"
    in_stream = [w for _, w in site.store.events_since("lobby", "0-0", count=10_000)
                 if json.loads(w)["event"]["upload_id"] == upload_id]
    assert len(in_stream) == 1
    assert site.store.get_decision(upload_id) == in_stream[0]


def test_lock_catches_up_from_the_stream(building: Site, photos: dict[str, bytes]) -> None:
    first = snap(building, "lobby", photos["obama3.jpg"]).event
    assert first is not None
    history = DoorListener(building.redis, "lobby", public_key(building, "lobby")).history(
        "0-0", count=10_000
    )
    ids = [h.event.upload_id for h in history if h.event is not None]
    assert first.upload_id in ids
    front_key = public_key(building, "front")  # another door's public key verifies nothing
    wrong_key = DoorListener(building.redis, "lobby", front_key).history("0-0", count=10_000)
    assert wrong_key and all(h.rejected == "unknown_key" for h in wrong_key)


# --------------------------------------------------------------------------- administration


def test_enrolment_refuses_photos_without_exactly_one_face(
    building: Site, photos: dict[str, bytes]
) -> None:
    with pytest.raises(EnrolmentError, match="no face found"):
        building.admin.enroll("ghost", [("landscape.jpg", photos["landscape.jpg"])])
    with pytest.raises(EnrolmentError, match="2 faces found"):
        building.admin.enroll("pair", [("two.jpg", photos["two_people.jpg"])])
    with pytest.raises(EnrolmentError, match="bad image"):
        building.admin.enroll("junk", [("junk.jpg", b"not an image")])
    people = building.store.people()
    assert not {"ghost", "pair", "junk"} & set(people)
    for name in ("ghost", "pair", "junk"):
        assert building.objects.delete_prefix(f"enroll/{name}/") == 0


def test_revoke_erases_the_person_everywhere(building: Site, photos: dict[str, bytes]) -> None:
    site = building
    site.admin.enroll("temp_guest", [("b.jpg", photos["biden.jpg"])], doors=["front"])
    granted = snap(site, "front", photos["biden.jpg"], "temp_guest").event
    assert granted is not None and granted.granted
    result = site.admin.revoke("temp_guest")
    assert result.was_enrolled and result.photos_deleted == 1 and result.snapshots_deleted >= 1
    assert result.doors == ["front"]
    assert "temp_guest" not in site.store.people()
    policy = site.store.get_door("front")
    assert policy is not None and "temp_guest" not in policy.allowed
    assert site.objects.stat(keys.upload_object_key("front", "cam1", granted.upload_id)) is None
    denied = snap(site, "front", photos["biden.jpg"], "temp_guest").event
    assert denied is not None and denied.reason.value == "unknown_person"


def test_cli_snap_and_log(
    building: Site, photos: dict[str, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from facegate.tools.cli import main

    for name, value in building.env.items():
        monkeypatch.setenv(name, value)
    image = tmp_path / "me.jpg"
    image.write_bytes(photos["obama3.jpg"])
    assert main(["snap", "front", str(image), "--badge", "obama", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and doc["decision"] == "OPEN" and doc["person"] == "obama"
    assert main(["snap", "front", str(image), "--badge", "biden"]) == 3
    assert "below_threshold" in capsys.readouterr().out
    assert main(["log", "--door", "front", "-n", "2", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["event"]["reason"] for x in lines] == ["below_threshold", "granted"]
