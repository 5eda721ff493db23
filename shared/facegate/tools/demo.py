"""``python -m facegate.tools.demo`` (``make demo``): the door story on real faces.

Starts its own stack (Redis, SeaweedFS, ingest, one encoder, one matcher,
the console; ports ``--base-port`` .. +7, default 27300-27307, state in
``var/demo/``), then:

1. configures three doors: ``front`` (badge + face, 1:1), ``lobby`` (face
   only, 1:K, its threshold calibrated for its gallery: 0.1% of strangers'
   approaches of up to 3 frames) and ``gym`` (face only with the fixed 1:1
   threshold 0.6), and shows each door's Ed25519 public key (what its lock
   holds); enrols three residents through the encoder (Barack Obama from two
   photos, Joe Biden from one: ``face_recognition``'s sdist; Grace Hopper
   from one: matplotlib's sample data), after showing a mix-up being
   refused; prints what each door promises (``facegate doors list``) and
   what the lobby's threshold would be at building scale;
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
   - the resident, no badge, at ``gym``                    -> OPEN
   - the resident's photo written straight into the bucket with S3
     credentials (no presigned URL, so no claim) at ``lobby`` -> DENY unclaimed
   - an approach of 3 frames (stranger, resident, resident) at ``lobby``
                                                           -> one OPEN
   - an approach of 2 frames of the stranger at ``lobby``  -> one DENY when
     the approach's window closes

3. runs a real lock process for ``lobby`` (``facegate subscribe`` with only
   the public key and a state folder), kills it with ``kill -9``, decides
   two uploads while it is down, starts it again and shows it catching both
   up from the stream, each once;
4. shows the lock refusing a replay, a tampered copy, made-up signatures,
   an event signed with an attacker's key and the audit record of an
   approach's frame that did not open; then rotates the lobby's key: a lock
   holding only the old key refuses the next event (``unknown_key``), one
   holding both accepts it;
5. prints the decision log, creates an admin account for the operators'
   console (a fresh random password, also in ``var/demo/console-admin.txt``),
   prints the console's URL and the credentials, and stops the stack
   (``--keep`` leaves it running, console included).

Exit status 0 when every decision was the expected one.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def forget_previous_runs(state_dir: Path) -> None:
    """Start the story from nothing: the stack's Redis keeps its data across
    ``down``/``up`` (append-only file), so a second demo would otherwise find
    the first one's people, door keys and events (and its lock's state)."""
    import shutil

    for data in ("redis", "seaweedfs", "lock"):
        shutil.rmtree(state_dir / data, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegate.tools.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the demo stack running")
    parser.add_argument("--state-dir", type=Path, default=DEMO_STATE)
    parser.add_argument("--base-port", type=int, default=DEMO_BASE_PORT,
                        help=f"first of the 8 ports the demo stack uses ({DEMO_BASE_PORT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from facegate.tools.samples import astronaut_path, grace_hopper_path, sample_faces_dir

    print("facegate demo: fetching real face photos (cached after the first run)")
    faces = sample_faces_dir()
    photos = {
        "obama.jpg": (faces / "obama.jpg").read_bytes(),
        "obama2.jpg": (faces / "obama2.jpg").read_bytes(),
        "obama3.jpg": (faces / "obama3.jpg").read_bytes(),
        "biden.jpg": (faces / "biden.jpg").read_bytes(),
        "astronaut.png": astronaut_path().read_bytes(),
        "grace_hopper.jpg": grace_hopper_path().read_bytes(),
        "landscape.jpg": no_face_picture(),
    }
    photos["truncated.jpg"] = photos["obama3.jpg"][: len(photos["obama3.jpg"]) // 3]

    stack = Stack(
        StackConfig.for_tests(args.base_port, state_dir=args.state_dir, ready_timeout_s=300.0)
    )
    print(f"starting the stack (Redis, SeaweedFS, ingest, encoder, matcher, console) in "
          f"{stack.state_dir}")
    t0 = time.monotonic()
    console = ("", "")
    try:
        stack.down()  # a previous demo that was interrupted
        forget_previous_runs(stack.state_dir)
        stack.up()
        print(f"stack ready in {time.monotonic() - t0:.1f} s\n")
        ok = run_story(stack, photos, args.state_dir / "lock")
        console = console_admin(stack)
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
    if console[0]:
        name, password = console
        state = "running" if args.keep else "stopped with the stack: run the demo with --keep"
        print(f"\noperators' console: {stack.config.console_url} ({state})\n"
              f"   sign in as {name} / {password} (admin; also in "
              f"{stack.state_dir / 'console-admin.txt'})")
    return 0 if ok else 1


def console_admin(stack: Stack) -> tuple[str, str]:
    """An admin account for the console, with a fresh random password."""
    import secrets

    from facegate.adapters.redis_operators import RedisOperators, hash_password
    from facegate.adapters.redis_store import RedisStore
    from facegate.core.audit import Action, AdminAction
    from facegate.core.operators import Role
    from facegate.runtime.settings import CommonSettings

    name, password = "demo-admin", secrets.token_urlsafe(12)
    store = RedisStore.from_url(CommonSettings.from_env(stack.env()).redis_url)
    try:
        RedisOperators(store.client).add_operator(
            name, Role.ADMIN, hash_password(password), replace=True
        )
        store.record_admin(AdminAction("demo", Action.OPERATOR_ADD, name, time.time(),
                                       {"role": "admin"}))
    finally:
        store.close()
    path = stack.state_dir / "console-admin.txt"
    path.write_text(f"{name}\n{password}\n")
    path.chmod(0o600)
    return name, password


def run_story(stack: Stack, photos: dict[str, bytes], lock_dir: Path) -> bool:
    import redis

    from facegate.adapters.celery_app import make_celery, send_encode
    from facegate.adapters.objectstore import MinioObjectStore
    from facegate.adapters.redis_store import RedisStore
    from facegate.clients.admin import Admin
    from facegate.clients.camera import CameraClient
    from facegate.core import keys
    from facegate.core.calibration import DEFAULT_MARGIN
    from facegate.core.policy import DoorMode, DoorPolicy
    from facegate.core.signing import DoorSigner
    from facegate.runtime.settings import CommonSettings
    from facegate.tools.cli_report import doors_list_lines
    from facegate.tools.demo_doors import approaches_story, building_scale, enrol_story
    from facegate.tools.demo_lock import refusal_story, restart_story, rotation_story

    env = stack.env()
    settings = CommonSettings.from_env(env)
    secret = settings.signing_secret.get_secret_value()
    store = RedisStore.from_url(settings.redis_url)
    celery = make_celery(settings, "facegate-demo")
    objects = MinioObjectStore(settings)
    admin = Admin(settings, store, objects, lambda r: send_encode(celery, r), actor="demo")
    camera = CameraClient(stack.config.ingest_url, env["FACEGATE_CAMERA_TOKEN"])
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30.0)

    def signer(door: str) -> DoorSigner:
        return DoorSigner.derive(secret, door, store.door_key_version(door))

    def public_key(door: str) -> str:
        return str(signer(door).public_key.hex)

    def upload(door: str, photo: str, badge: str | None) -> str:
        ticket = camera.presign(door, "cam1", badge, ext=photo.rsplit(".", 1)[-1])
        camera.put(ticket, photos[photo])
        return str(ticket.upload_id)

    def bucket_write(door: str, photo: str) -> str:
        """The photo put straight into the bucket with S3 keys: no claim."""
        upload_id = keys.new_upload_id()
        ext = photo.rsplit(".", 1)[-1]
        objects.put(keys.upload_object_key(door, "cam1", upload_id, ext), photos[photo],
                    keys.IMAGE_EXTENSIONS[ext])
        return upload_id

    print("== doors")
    admin.set_door(DoorPolicy("front", DoorMode.VERIFY, frozenset(), THRESHOLD))
    admin.set_door(
        DoorPolicy("lobby", DoorMode.IDENTIFY, frozenset({"*"}), margin=DEFAULT_MARGIN, frames=3)
    )
    admin.set_door(DoorPolicy("gym", DoorMode.IDENTIFY, frozenset({"*"}), THRESHOLD))
    print("front: badge + face (1:1, threshold 0.6); lobby: face only (1:K), threshold "
          "calibrated for 0.1% of strangers' approaches of up to 3 frames, margin 0.1; gym: "
          "face only with the fixed threshold 0.6 and no margin")
    for door in ("front", "lobby", "gym"):
        key = signer(door)
        print(f"{door} lock's Ed25519 public key (id {key.kid}): {key.public_key.hex}")
    print("\n== enrolling residents (through the encoder)")
    enrol_story(admin, photos)
    print("\n== what each door promises (facegate doors list)")
    print("\n".join(doors_list_lines(store, env)))
    building_scale()

    print("\n== at the doors (each line: the event as the lock received and verified it)")
    all_ok, last_open = doors_story(client, public_key, upload, bucket_write)
    print("\n== several frames of one approach at lobby (the lock hears one event each)")
    ok, audit_frame = approaches_story(client, camera, public_key, photos)
    all_ok &= ok

    print("\n== a lock process that dies and comes back (facegate subscribe --state-dir)")
    all_ok &= restart_story(store, public_key("lobby"), settings.redis_url, lock_dir, upload)

    print("\n== the lock refuses what it must not trust")
    if last_open is not None:
        from facegate.clients.lock import DoorListener

        listener = DoorListener(client, "lobby", public_key("lobby"))
        listener.check(last_open)  # this lock has accepted the real event once
        all_ok &= refusal_story(listener, last_open, audit_frame)
    all_ok &= rotation_story(store, client, public_key, upload)

    print("\n== decision log (facegate log; every frame of an approach included)")
    for _, wire in reversed(store.read_log(None, count=12)):
        e = json.loads(wire)["event"]
        approach = f"  approach {e['approach'][:8]}" if e.get("approach") else ""
        door_event = f"stream id {e['stream_id']}" if e.get("stream_id") else "audit only"
        print(f"   {e['decision']:<4} {e['door']:<6} {e['reason']:<16} person="
              f"{e['person'] or '-':<7} {door_event:<27}{approach}".rstrip())
    print("\n" + ("every decision was the expected one" if all_ok else "SOME DECISIONS WERE WRONG"))
    client.close()
    store.close()
    return all_ok


def doors_story(
    client: Any,
    public_key: Callable[[str], str],
    upload: Callable[[str, str, str | None], str],
    bucket_write: Callable[[str, str], str],
) -> tuple[bool, bytes | None]:
    """One snapshot per case, each heard by a lock of its door: ``(as
    expected, the wire of the lobby's last OPEN)``."""
    from facegate.clients.lock import DoorListener
    from facegate.tools.cli_lock import format_event

    cases = [
        Case("resident with his badge", "front", "obama3.jpg", "obama", ("OPEN", "granted")),
        Case("same resident, no badge", "lobby", "obama3.jpg", None, ("OPEN", "granted")),
        Case("impostor holding obama's badge", "front", "astronaut.png", "obama",
             ("DENY", "below_threshold")),
        Case("unknown person", "lobby", "astronaut.png", None, ("DENY", "unknown_person")),
        Case("picture without a face", "lobby", "landscape.jpg", None, ("DENY", "no_face")),
        Case("truncated JPEG", "front", "truncated.jpg", "biden", ("DENY", "bad_image")),
        Case("resident, no badge, fixed-threshold door", "gym", "obama3.jpg", None,
             ("OPEN", "granted")),
        Case("written straight into the bucket (no claim)", "lobby", "obama3.jpg", None,
             ("DENY", "unclaimed"), via="bucket"),
    ]
    all_ok = True
    last_open: bytes | None = None
    for case in cases:
        listener = DoorListener(client, case.door, public_key(case.door))
        listener.subscribe()  # returns once Redis confirmed: nothing published after is missed
        if case.via == "bucket":
            upload_id = bucket_write(case.door, case.photo)
        else:
            upload_id = upload(case.door, case.photo, case.badge)
        got = next((i for i in listener.events(timeout_s=60.0) if i.upload_id == upload_id), None)
        listener.close()
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
    return all_ok, last_open


if __name__ == "__main__":
    raise SystemExit(main())
