"""``facegate snap``: act as a camera at a door and print what the lock hears.

One photo is one upload (a single-frame approach). Several photos, or
``--frames N``, are sent as one approach (the photos in turn, repeated to
N frames): the lock hears at most one OPEN for them (the first frame that
passes), or one DENY when the approach's window closes without a pass; the
per-frame decisions, each in the audit log, are printed after it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from facegate.core.errors import ConfigError, FacegateError
from facegate.tools.cli_context import Context
from facegate.tools.cli_context import context as _ctx
from facegate.tools.cli_lock import event_json, format_event, lock_listener


def _read(paths: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for name in paths:
        path = Path(name)
        try:
            out.append((path.suffix.lstrip(".").lower() or "jpg", path.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return out


def _frame_lines(ctx: Context, upload_ids: list[str]) -> list[str]:
    lines = []
    for i, upload_id in enumerate(upload_ids, start=1):
        wire = ctx.store.get_decision(upload_id)
        if wire is None:
            lines.append(f"   frame {i}: not decided yet  upload={upload_id[:12]}")
            continue
        e: dict[str, Any] = json.loads(wire)["event"]
        d = e.get("distance")
        who = e.get("person") or "-"
        lines.append(
            f"   frame {i}: {e['decision']:<4} {e['reason']:<17} person={who:<12}"
            f" d={'-' if d is None else f'{d:.3f}'}  upload={upload_id[:12]}"
        )
    return lines


def cmd_snap(args: argparse.Namespace) -> int:
    """Upload one snapshot, or the frames of one approach, and wait for the door."""
    ctx = _ctx()
    photos = _read(args.images)
    frames = args.frames or len(photos)
    if frames < 1:
        raise ConfigError("--frames must be at least 1")
    camera = ctx.camera()
    single = frames == 1 and args.frames is None
    sent: dict[str, Any] = {}

    def send() -> None:
        if single:
            ext, data = photos[0]
            if args.direct:
                sent["upload_id"] = camera.upload(args.door, args.camera, data, badge=args.badge)
            else:
                t = camera.presign(args.door, args.camera, args.badge, ext=ext)
                camera.put(t, data)
                sent["upload_id"] = t.upload_id
            return
        from facegate.clients.camera import new_approach_id

        approach = new_approach_id()
        sent["approach"] = approach
        sent["uploads"] = []
        for i in range(frames):
            ext, data = photos[i % len(photos)]
            if args.direct:
                uid = camera.upload(args.door, args.camera, data, badge=args.badge,
                                    approach=approach)
            else:
                t = camera.presign(args.door, args.camera, args.badge, ext=ext, approach=approach)
                camera.put(t, data)
                uid = t.upload_id
            sent["uploads"].append(uid)

    listener = lock_listener(ctx, args.door, None)
    for item in listener.listen(timeout_s=args.wait, on_subscribed=send):
        event = item.event
        if single:
            if item.upload_id != sent.get("upload_id"):
                continue
        elif event is None or event.approach != sent.get("approach"):
            continue
        print(json.dumps(event_json(item)) if args.json else format_event(item))
        if not single and not args.json:
            print(f"   approach {sent['approach']} ({frames} frames; each in the audit log):")
            print("\n".join(_frame_lines(ctx, sent["uploads"])))
        return 0 if event is not None and event.granted else 3
    what = sent.get("upload_id") or f"approach {sent.get('approach')}"
    raise FacegateError(f"no decision for {what} within {args.wait} s")


def register(sub: Any) -> None:
    snap = sub.add_parser("snap", help="act as a camera: upload snapshots, print the decision")
    snap.add_argument("door")
    snap.add_argument("images", nargs="+", metavar="IMAGE",
                      help="one photo, or the frames of one approach")
    snap.add_argument("--frames", type=int, metavar="N",
                      help="send N frames as one approach (the photos in turn)")
    snap.add_argument("--camera", default="cli")
    snap.add_argument("--badge", help="the claimed person (verify doors)")
    snap.add_argument("--direct", action="store_true",
                      help="upload through ingest instead of a presigned PUT")
    snap.add_argument("--wait", type=float, default=30.0, help="seconds to wait (30)")
    snap.add_argument("--json", action="store_true")
    snap.set_defaults(handler=cmd_snap)
