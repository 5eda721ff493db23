"""Pipeline commands: doors, enroll, revoke, people, log (``snap``, the
camera's side, is in :mod:`facegate.tools.cli_camera`; ``subscribe`` and
``doors key/rotate-key``, the lock's side, in :mod:`facegate.tools.cli_lock`).

They talk to the running services through Redis, the object store, Celery
and ingest, configured by the ``FACEGATE_*`` environment. When
``FACEGATE_REDIS_URL`` is not set and a local stack was started with
``facegate stack up``, its settings (``var/stack/stack.env``) are used, so
the commands work right after ``facegate stack up`` with no exports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from facegate.core.calibration import DEFAULT_MARGIN, DEFAULT_STRANGER_RATE
from facegate.core.errors import ConfigError
from facegate.tools import cli_groups, cli_lock
from facegate.tools.cli_context import context as _ctx
from facegate.tools.cli_report import doors_list_lines, enrol_advice

EVENT_FIELDS = ("decision", "reason", "person", "distance", "door", "camera", "upload_id")


# --------------------------------------------------------------------------- doors


def cmd_doors_add(args: argparse.Namespace) -> int:
    from facegate.core.policy import DoorMode, DoorPolicy

    ctx = _ctx()
    policy = DoorPolicy(
        args.door,
        DoorMode(args.mode),
        frozenset(args.allow or ()),
        args.threshold,
        args.margin,
        args.stranger_rate,
        args.frames,
    )
    ctx.admin().set_door(policy)
    if policy.threshold is not None:
        how = f"threshold {policy.threshold} (fixed)"
    elif policy.calibrated:
        how = (f"threshold calibrated for {policy.stranger_rate:g} strangers per approach "
               f"of {policy.frames} frame(s)")
    else:
        how = "threshold: the matcher's default (FACEGATE_THRESHOLD)"
    print(f"door {policy.door}: {policy.mode.value}, allowed {sorted(policy.allowed) or '-'}, "
          f"{how}, margin {policy.margin} (facegate doors list: what it promises)")
    return 0


def cmd_doors_list(args: argparse.Namespace) -> int:
    ctx = _ctx()
    print("\n".join(doors_list_lines(ctx.store, ctx.env)))
    return 0


def cmd_doors_remove(args: argparse.Namespace) -> int:
    ctx = _ctx()
    if not ctx.admin().remove_door(args.door):
        print(f"door {args.door} was not configured", file=sys.stderr)
        return 1
    print(f"door {args.door} removed")
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
    ctx = _ctx()
    result = ctx.admin().enroll(args.name, photos, doors=doors, timeout_s=args.timeout)
    for photo in result.photos:
        print(f"  {photo.name}: 1 face, quality {photo.quality:.2f}")
    where = f"; allowed at {', '.join(result.doors)}" if result.doors else ""
    count = len(result.templates)
    print(f"enrolled {result.person}: {count} template(s) ({result.model_id}){where}; "
          f"{result.total_templates} photo(s) in all")
    for line in enrol_advice(ctx.store, result.person, ctx.env):
        print(line)
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
    _, templates = _ctx().store.templates_snapshot()
    for person in sorted(templates):
        count = len(templates[person])
        more = "" if count >= 3 else "  (more photos let them in more often: facegate enroll)"
        print(f"{person:<24} {count} photo(s){more}")
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
            + (f"  approach={event['approach']}" if event.get("approach") else "")
            + ("" if event.get("stream_id") else "  (frame: audit only, not a door event)")
        )
    return 0


# --------------------------------------------------------------------------- registration


def register(sub: Any) -> None:
    doors = sub.add_parser("doors", help="configure doors (mode, allowed people, key)")
    dsub = doors.add_subparsers(dest="doors_command", metavar="ACTION", required=True)
    add = dsub.add_parser("add", help="create or replace a door")
    add.add_argument("door")
    add.add_argument("--mode", choices=("verify", "identify"), default="verify",
                     help="verify: badge + face (1:1); identify: face only (1:K)")
    add.add_argument("--allow", nargs="*", metavar="NAME", help="people allowed ('*' = everyone)")
    add.add_argument("--threshold", type=float,
                     help="fixed distance threshold (default: identify doors are calibrated "
                     "for their gallery, verify doors use FACEGATE_THRESHOLD)")
    add.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                     help="identify: best person must beat the second by this much "
                     f"({DEFAULT_MARGIN:g}, chosen by measurement)")
    add.add_argument("--stranger-rate", type=float, default=DEFAULT_STRANGER_RATE,
                     metavar="RATE", help="identify: strangers let in per approach (1e-3)")
    add.add_argument("--frames", type=int, default=1,
                     help="frames a camera sends per approach (1; each is a try for an "
                     "impostor too, so the threshold is for the approach)")
    add.set_defaults(handler=cmd_doors_add)
    dsub.add_parser(
        "list", help="list doors: threshold, strangers and residents let in"
    ).set_defaults(handler=cmd_doors_list)
    cli_groups.register_door_commands(dsub)
    rm = dsub.add_parser("remove", help="delete a door")
    rm.add_argument("door")
    rm.set_defaults(handler=cmd_doors_remove)
    cli_lock.register_key_commands(dsub)

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

    cli_lock.register(sub)
    cli_groups.register(sub)
