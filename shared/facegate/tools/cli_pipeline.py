"""Pipeline commands: doors, enroll, revoke, people, snap, subscribe, log.

They talk to the running services through Redis, the object store, Celery
and ingest, configured by the ``FACEGATE_*`` environment. When
``FACEGATE_REDIS_URL`` is not set and a local stack was started with
``facegate stack up``, its settings (``var/stack/stack.env``) are used, so
the commands work right after ``facegate stack up`` with no exports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from facegate.core.errors import ConfigError, FacegateError

EVENT_FIELDS = ("decision", "reason", "person", "distance", "door", "camera", "upload_id")


def client_env(state_dir: Path | None = None) -> dict[str, str]:
    """The environment clients use: ``os.environ``, completed from the local
    stack's settings when the FACEGATE_* variables are not exported."""
    env = dict(os.environ)
    if "FACEGATE_REDIS_URL" in env:
        return env
    from facegate.tools.devstack import Stack, StackConfig

    stack = Stack(StackConfig.default(state_dir))
    if stack.env_file.is_file():
        return {**stack.env(), **env}
    return env


class Context:
    """Lazily built clients for one command."""

    def __init__(self, env: dict[str, str]) -> None:
        from facegate.runtime.settings import CommonSettings

        self.env = env
        self.settings = CommonSettings.from_env(env)
        self._store: Any = None
        self._objects: Any = None
        self._celery: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from facegate.adapters.redis_store import RedisStore

            self._store = RedisStore.from_url(self.settings.redis_url)
        return self._store

    @property
    def objects(self) -> Any:
        if self._objects is None:
            from facegate.adapters.objectstore import MinioObjectStore

            self._objects = MinioObjectStore(self.settings)
        return self._objects

    def admin(self) -> Any:
        from facegate.adapters.celery_app import make_celery, send_encode
        from facegate.clients.admin import Admin

        if self._celery is None:
            self._celery = make_celery(self.settings, "facegate-cli")
        celery = self._celery
        return Admin(self.settings, self.store, self.objects, lambda r: send_encode(celery, r))

    def door_key(self, door: str) -> bytes:
        from facegate.core.signing import derive_door_key

        return derive_door_key(self.settings.signing_secret.get_secret_value(), door)

    def camera(self) -> Any:
        from facegate.clients.camera import CameraClient

        url = self.env.get("FACEGATE_INGEST_URL") or (
            f"http://{self.env.get('FACEGATE_INGEST_HOST', '127.0.0.1')}:"
            f"{self.env.get('FACEGATE_INGEST_PORT', '18700')}"
        )
        token = self.env.get("FACEGATE_CAMERA_TOKEN")
        if not token:
            raise ConfigError("FACEGATE_CAMERA_TOKEN is not set")
        return CameraClient(url, token)


def _ctx() -> Context:
    return Context(client_env())


# --------------------------------------------------------------------------- formatting


def format_event(item: Any, door: str | None = None) -> str:
    """One line for a received (verified or rejected) event."""
    if item.event is None:
        return f"REJECTED  {item.rejected}: {item.detail}"
    e = item.event
    since = e.stamps.get("uploaded")
    latency = f"{(item.received_at - since) * 1000:6.0f} ms" if since is not None else "      ?"
    distance = f"d={e.distance:.3f}" if e.distance is not None else "d=-    "
    return (
        f"{e.decision.value:<4}  door={e.door:<10} {e.reason.value:<17} "
        f"person={e.person or '-':<12} {distance}  upload->event {latency}  "
        f"upload={e.upload_id[:12]}"
    )


def event_json(item: Any) -> dict[str, Any]:
    if item.event is None:
        return {"verified": False, "rejected": item.rejected, "detail": item.detail}
    doc: dict[str, Any] = item.event.to_dict()
    doc["verified"] = True
    doc["received_at"] = item.received_at
    return doc


# --------------------------------------------------------------------------- doors


def cmd_doors_add(args: argparse.Namespace) -> int:
    from facegate.core.policy import DoorMode, DoorPolicy

    ctx = _ctx()
    policy = DoorPolicy(
        args.door,
        DoorMode(args.mode),
        frozenset(args.allow or ()),
        args.threshold if args.threshold is not None else 0.6,
        args.margin,
    )
    ctx.admin().set_door(policy)
    print(f"door {policy.door}: {policy.mode.value}, allowed {sorted(policy.allowed) or '-'}, "
          f"threshold {policy.threshold}, margin {policy.margin}")
    return 0


def cmd_doors_list(args: argparse.Namespace) -> int:
    ctx = _ctx()
    doors = ctx.store.list_doors()
    if not doors:
        print("no doors configured (facegate doors add DOOR ...)")
    for door in doors:
        p = ctx.store.get_door(door)
        if p is not None:
            print(f"{p.door:<12} {p.mode.value:<9} threshold {p.threshold:<5} "
                  f"margin {p.margin:<4} allowed {', '.join(sorted(p.allowed)) or '-'}")
    return 0


def cmd_doors_change(args: argparse.Namespace) -> int:
    admin = _ctx().admin()
    change = admin.allow if args.doors_command == "allow" else admin.disallow
    policy = change(args.door, args.people)
    print(f"door {policy.door}: allowed {', '.join(sorted(policy.allowed)) or '-'}")
    return 0


def cmd_doors_remove(args: argparse.Namespace) -> int:
    ctx = _ctx()
    if not ctx.store.delete_door(args.door):
        print(f"door {args.door} was not configured", file=sys.stderr)
        return 1
    print(f"door {args.door} removed")
    return 0


def cmd_doors_key(args: argparse.Namespace) -> int:
    from facegate.core import keys

    keys.check_door(args.door)
    print(_ctx().door_key(args.door).hex())
    return 0


# --------------------------------------------------------------------------- people


def cmd_enroll(args: argparse.Namespace) -> int:
    photos = []
    for path in args.images:
        p = Path(path)
        try:
            photos.append((p.name, p.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    doors = [d for group in (args.doors or []) for d in group.split(",") if d]
    result = _ctx().admin().enroll(args.name, photos, doors=doors, timeout_s=args.timeout)
    for photo in result.photos:
        print(f"  {photo.name}: 1 face, quality {photo.quality:.2f}")
    where = f"; allowed at {', '.join(result.doors)}" if result.doors else ""
    count = len(result.templates)
    print(f"enrolled {result.person}: {count} template(s) ({result.model_id}){where}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    result = _ctx().admin().revoke(args.name)
    if not result.was_enrolled and not result.photos_deleted:
        print(f"{args.name} was not enrolled", file=sys.stderr)
        return 1
    print(
        f"revoked {result.person}: templates erased, {result.photos_deleted} enrolment photos "
        f"and {result.snapshots_deleted} door snapshots deleted"
        + (f", removed from {', '.join(result.doors)}" if result.doors else "")
    )
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    for person in _ctx().store.people():
        print(person)
    return 0


# --------------------------------------------------------------------------- events


def cmd_log(args: argparse.Namespace) -> int:
    ctx = _ctx()
    entries = ctx.store.read_log(args.door, count=args.count)
    if args.json:
        for stream_id, wire in entries:
            print(json.dumps({"id": stream_id, **json.loads(wire)}))
        return 0
    if not entries:
        print("no decisions yet")
    for _, wire in entries:
        event: dict[str, Any] = json.loads(wire)["event"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(event["issued_at"])))
        distance = event.get("distance")
        print(
            f"{when}  {event['decision']:<4} door={event['door']:<10} {event['reason']:<17} "
            f"person={event.get('person') or '-':<12} "
            f"d={'-' if distance is None else f'{distance:.3f}'}  upload={event['upload_id']}"
        )
    return 0


def _listener(ctx: Context, door: str, key_hex: str | None) -> Any:
    import redis

    from facegate.clients.lock import DoorListener

    key = bytes.fromhex(key_hex) if key_hex else ctx.door_key(door)
    client = redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=30.0)
    return DoorListener(client, door, key)


def cmd_subscribe(args: argparse.Namespace) -> int:
    ctx = _ctx()
    listener = _listener(ctx, args.door, args.key)
    print(f"listening on door {args.door} (Ctrl-C to stop)", file=sys.stderr)
    events = listener.listen(catch_up_from=args.catch_up, timeout_s=args.timeout)
    for seen, item in enumerate(events, start=1):
        print(json.dumps(event_json(item)) if args.json else format_event(item), flush=True)
        if args.count and seen >= args.count:
            break
    return 0


def cmd_snap(args: argparse.Namespace) -> int:
    """Act as a camera: upload one snapshot and wait for the verified event."""
    ctx = _ctx()
    path = Path(args.image)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    camera = ctx.camera()
    ext = path.suffix.lstrip(".").lower() or "jpg"
    ticket: dict[str, str] = {}

    def send() -> None:
        if args.direct:
            ticket["upload_id"] = camera.upload(args.door, args.camera, data, badge=args.badge)
        else:
            t = camera.presign(args.door, args.camera, args.badge, ext=ext)
            camera.put(t, data)
            ticket["upload_id"] = t.upload_id

    listener = _listener(ctx, args.door, None)
    for item in listener.listen(timeout_s=args.wait, on_subscribed=send):
        if item.upload_id != ticket.get("upload_id"):
            continue
        print(json.dumps(event_json(item)) if args.json else format_event(item))
        return 0 if item.event is not None and item.event.granted else 3
    raise FacegateError(f"no decision for upload {ticket.get('upload_id')} within {args.wait} s")


# --------------------------------------------------------------------------- registration


def register(sub: Any) -> None:
    doors = sub.add_parser("doors", help="configure doors (mode, allowed people, key)")
    dsub = doors.add_subparsers(dest="doors_command", metavar="ACTION", required=True)
    add = dsub.add_parser("add", help="create or replace a door")
    add.add_argument("door")
    add.add_argument("--mode", choices=("verify", "identify"), default="verify",
                     help="verify: badge + face (1:1); identify: face only (1:K)")
    add.add_argument("--allow", nargs="*", metavar="NAME", help="people allowed ('*' = everyone)")
    add.add_argument("--threshold", type=float, help="distance threshold (default 0.6)")
    add.add_argument("--margin", type=float, default=0.0,
                     help="identify: best person must beat the second by this much")
    add.set_defaults(handler=cmd_doors_add)
    dsub.add_parser("list", help="list doors").set_defaults(handler=cmd_doors_list)
    for name, text in (("allow", "allow people at a door"), ("disallow", "remove people")):
        p = dsub.add_parser(name, help=text)
        p.add_argument("door")
        p.add_argument("people", nargs="+", metavar="NAME")
        p.set_defaults(handler=cmd_doors_change)
    rm = dsub.add_parser("remove", help="delete a door")
    rm.add_argument("door")
    rm.set_defaults(handler=cmd_doors_remove)
    key = dsub.add_parser("key", help="print the door's event-signing key (hex) for its lock")
    key.add_argument("door")
    key.set_defaults(handler=cmd_doors_key)

    enroll = sub.add_parser("enroll", help="enrol a person from photos (through the encoder)")
    enroll.add_argument("name")
    enroll.add_argument("images", nargs="+", metavar="IMAGE")
    enroll.add_argument("--doors", nargs="*", metavar="DOOR", help="doors to allow them at")
    enroll.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (120)")
    enroll.set_defaults(handler=cmd_enroll)

    revoke = sub.add_parser("revoke", help="erase a person's encodings and photos everywhere")
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_revoke)

    sub.add_parser("people", help="list enrolled people").set_defaults(handler=cmd_people)

    log = sub.add_parser("log", help="the decision log (newest first)")
    log.add_argument("--door", help="one door's events (default: all doors)")
    log.add_argument("-n", "--count", type=int, default=20)
    log.add_argument("--json", action="store_true", help="signed events as JSON lines")
    log.set_defaults(handler=cmd_log)

    subscribe = sub.add_parser("subscribe", help="the lock-side client: print verified events")
    subscribe.add_argument("--door", required=True)
    subscribe.add_argument("--key", help="the door key in hex (default: derived from "
                           "FACEGATE_SIGNING_SECRET)")
    subscribe.add_argument("--catch-up", metavar="STREAM_ID", nargs="?", const="0-0",
                           help="first replay the door's stream after this id (default all)")
    subscribe.add_argument("--count", type=int, default=0, help="stop after N events")
    subscribe.add_argument("--timeout", type=float, help="stop after S seconds without events")
    subscribe.add_argument("--json", action="store_true")
    subscribe.set_defaults(handler=cmd_subscribe)

    snap = sub.add_parser("snap", help="act as a camera: upload a snapshot, print the decision")
    snap.add_argument("door")
    snap.add_argument("image")
    snap.add_argument("--camera", default="cli")
    snap.add_argument("--badge", help="the claimed person (verify doors)")
    snap.add_argument("--direct", action="store_true",
                      help="upload through ingest instead of a presigned PUT")
    snap.add_argument("--wait", type=float, default=30.0, help="seconds to wait (30)")
    snap.add_argument("--json", action="store_true")
    snap.set_defaults(handler=cmd_snap)
