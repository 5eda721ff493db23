"""``python -m facegate.tools.demo`` (``make demo``): the door story on real faces.

Starts its own stack (Redis, SeaweedFS, ingest, one encoder, one matcher;
ports 27300-27306, or ``--base-port``; state in ``var/demo/``), then:

1. configures two doors: ``front`` (badge + face, 1:1) and ``lobby`` (face
   only, 1:K), and enrols two residents through the encoder (Barack Obama
   from two photos, Joe Biden from one: photos from ``face_recognition``'s
   sdist);
2. a camera uploads snapshots through presigned PUTs; for each one the demo,
   acting as the door's lock, prints the signed event it received and
   verified, with the upload-to-event latency:

   - a resident with his badge at ``front``                -> OPEN
   - the same resident, no badge, at ``lobby``             -> OPEN (identified)
   - an impostor (NASA's astronaut portrait, from scikit-image's wheel)
     holding the resident's badge at ``front``             -> DENY below_threshold
   - the same unknown person at ``lobby``                  -> DENY unknown_person
   - a picture without a face                              -> DENY no_face
   - a truncated JPEG                                      -> DENY bad_image
   - the resident's photo written straight into the bucket with S3
     credentials (no presigned URL, so no claim) at ``lobby`` -> DENY unclaimed

3. shows the lock refusing a tampered copy and a replay of a real event;
4. stops the stack (``--keep`` leaves it running).

Exit status 0 when every decision was the expected one.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from facegate.tools.devstack import ROOT, Stack, StackConfig

DEMO_BASE_PORT = 27300
DEMO_STATE = ROOT / "var" / "demo"
THRESHOLD = 0.6


@dataclass(frozen=True)
class Case:
    title: str
    door: str
    photo: str
    badge: str | None
    expect: tuple[str, str]
    via: str = "camera"
    """``camera``: presigned PUT; ``bucket``: written with S3 credentials, unclaimed."""


def no_face_picture() -> bytes:
    """A landscape-ish picture with no face in it (drawn, not downloaded)."""
    import numpy as np
    from PIL import Image, ImageDraw

    h, w = 360, 480
    sky = np.linspace(200, 90, h, dtype=np.float32)[:, None]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (sky * 0.6).astype(np.uint8)
    img[..., 1] = (sky * 0.8).astype(np.uint8)
    img[..., 2] = sky.astype(np.uint8)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    draw.polygon([(0, 300), (140, 170), (260, 290), (380, 150), (480, 260), (480, 360), (0, 360)],
                 fill=(70, 90, 60))
    draw.rectangle([200, 250, 260, 330], fill=(120, 60, 40))
    out = io.BytesIO()
    pil.save(out, format="JPEG", quality=90)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegate.tools.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the demo stack running")
    parser.add_argument("--state-dir", type=Path, default=DEMO_STATE)
    parser.add_argument("--base-port", type=int, default=DEMO_BASE_PORT,
                        help=f"first of the 7 ports the demo stack uses (default {DEMO_BASE_PORT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from facegate.tools.samples import astronaut_path, sample_faces_dir

    print("facegate demo: fetching real face photos (cached after the first run)")
    faces = sample_faces_dir()
    photos = {
        "obama.jpg": (faces / "obama.jpg").read_bytes(),
        "obama2.jpg": (faces / "obama2.jpg").read_bytes(),
        "obama3.jpg": (faces / "obama3.jpg").read_bytes(),
        "biden.jpg": (faces / "biden.jpg").read_bytes(),
        "astronaut.png": astronaut_path().read_bytes(),
        "landscape.jpg": no_face_picture(),
    }
    photos["truncated.jpg"] = photos["obama3.jpg"][: len(photos["obama3.jpg"]) // 3]

    stack = Stack(
        StackConfig.for_tests(args.base_port, state_dir=args.state_dir, ready_timeout_s=300.0)
    )
    print(f"starting the stack (Redis, SeaweedFS, ingest, encoder, matcher) in {stack.state_dir}")
    t0 = time.monotonic()
    try:
        stack.down()  # a previous demo that was interrupted
        stack.up()
        print(f"stack ready in {time.monotonic() - t0:.1f} s\n")
        ok = run_story(stack, photos)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        ok = False
    except Exception as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for name in ("ingest", "encoder-1", "matcher-1"):
            print(f"--- last lines of {name}:\n{stack.tail(name, 15)}", file=sys.stderr)
        ok = False
    finally:
        if not args.keep:
            stack.down()
            print("stack stopped")
        else:
            print(f"stack left running; stop it with "
                  f"`facegate stack down --state-dir {stack.state_dir}`")
    return 0 if ok else 1


def run_story(stack: Stack, photos: dict[str, bytes]) -> bool:
    import redis

    from facegate.adapters.celery_app import make_celery, send_encode
    from facegate.adapters.objectstore import MinioObjectStore
    from facegate.adapters.redis_store import RedisStore
    from facegate.clients.admin import Admin
    from facegate.clients.camera import CameraClient
    from facegate.clients.lock import DoorListener
    from facegate.core import keys
    from facegate.core.policy import DoorMode, DoorPolicy
    from facegate.core.signing import derive_door_key
    from facegate.runtime.settings import CommonSettings
    from facegate.tools.cli_pipeline import format_event

    env = stack.env()
    settings = CommonSettings.from_env(env)
    store = RedisStore.from_url(settings.redis_url)
    celery = make_celery(settings, "facegate-demo")
    objects = MinioObjectStore(settings)
    admin = Admin(settings, store, objects, lambda r: send_encode(celery, r))
    camera = CameraClient(stack.config.ingest_url, env["FACEGATE_CAMERA_TOKEN"])
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30.0)

    print("== doors")
    admin.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset(), THRESHOLD))
    admin.set_door(DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), THRESHOLD))
    print("front: badge + face (1:1), lobby: face only (1:K), threshold 0.6")
    print("\n== enrolling residents (through the encoder)")
    for person, names in (("obama", ["obama.jpg", "obama2.jpg"]), ("biden", ["biden.jpg"])):
        result = admin.enroll(person, [(n, photos[n]) for n in names], doors=["front"])
        print(f"{person}: {len(result.templates)} template(s) from {', '.join(names)}; "
              f"allowed at {', '.join(result.doors)}")

    cases = [
        Case("resident with his badge", "front", "obama3.jpg", "obama", ("OPEN", "granted")),
        Case("same resident, no badge", "lobby", "obama3.jpg", None, ("OPEN", "granted")),
        Case("impostor holding obama's badge", "front", "astronaut.png", "obama",
             ("DENY", "below_threshold")),
        Case("unknown person", "lobby", "astronaut.png", None, ("DENY", "unknown_person")),
        Case("picture without a face", "lobby", "landscape.jpg", None, ("DENY", "no_face")),
        Case("truncated JPEG", "front", "truncated.jpg", "biden", ("DENY", "bad_image")),
        Case("written straight into the bucket (no claim)", "lobby", "obama3.jpg", None,
             ("DENY", "unclaimed"), via="bucket"),
    ]
    print("\n== at the doors (each line: the event as the lock received and verified it)")
    all_ok = True
    last_open: bytes | None = None
    for case in cases:
        key = derive_door_key(settings.signing_secret.get_secret_value(), case.door)
        listener = DoorListener(client, case.door, key)
        sent: dict[str, str] = {}
        ext = case.photo.rsplit(".", 1)[-1]

        def upload(case: Case = case, sent: dict[str, str] = sent, ext: str = ext) -> None:
            if case.via == "bucket":
                upload_id = keys.new_upload_id()
                key = keys.upload_object_key(case.door, "cam1", upload_id, ext)
                objects.put(key, photos[case.photo], "image/jpeg")
                sent["upload_id"] = upload_id
                return
            ticket = camera.presign(case.door, "cam1", case.badge, ext=ext)
            camera.put(ticket, photos[case.photo])
            sent["upload_id"] = ticket.upload_id

        got = None
        for item in listener.listen(timeout_s=60.0, on_subscribed=upload):
            if item.upload_id == sent.get("upload_id"):
                got = item
                break
        badge = f"badge {case.badge}" if case.badge else "no badge"
        badge += ", S3 keys" if case.via == "bucket" else ""
        print(f"-- {case.title}: {case.photo} at {case.door}, {badge}")
        if got is None or got.event is None:
            print("   no verified event!" if got is None else f"   {format_event(got)}")
            all_ok = False
            continue
        outcome = (got.event.decision.value, got.event.reason.value)
        mark = "ok" if outcome == case.expect else f"UNEXPECTED (wanted {' '.join(case.expect)})"
        print(f"   {format_event(got)}  [{mark}]")
        all_ok &= outcome == case.expect
        if got.event.granted and case.door == "lobby":
            last_open = got.wire

    print("\n== the lock refuses what it must not trust")
    if last_open is not None:
        key = derive_door_key(settings.signing_secret.get_secret_value(), "lobby")
        listener = DoorListener(client, "lobby", key)
        listener.check(last_open)  # this lock has accepted the real event once
        doc = json.loads(last_open)
        doc["event"]["person"] = "mallory"
        tampered = json.dumps(doc).encode()
        forged_doc = json.loads(last_open)
        forged_doc["sig"] = "0" * 64
        for label, wire in (("replay of the real OPEN", last_open),
                            ("same OPEN, person changed", tampered),
                            ("same OPEN, made-up signature", json.dumps(forged_doc).encode())):
            item = listener.check(wire)
            verdict = f"rejected: {item.rejected}" if item.rejected else "ACCEPTED (bad!)"
            print(f"   {label:<30} -> {verdict}")
            all_ok &= item.rejected is not None
    print("\n== decision log (facegate log)")
    for _, wire in reversed(store.read_log(None, count=len(cases))):
        e = json.loads(wire)["event"]
        print(f"   {e['decision']:<4} {e['door']:<6} {e['reason']:<16} person={e['person']}")
    print("\n" + ("every decision was the expected one" if all_ok else "SOME DECISIONS WERE WRONG"))
    client.close()
    store.close()
    return all_ok


if __name__ == "__main__":
    raise SystemExit(main())
