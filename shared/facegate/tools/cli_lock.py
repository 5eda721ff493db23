"""The lock-side commands: ``facegate subscribe`` (a lock on the command
line), ``facegate doors key`` and ``facegate doors rotate-key``, and how a
received event is printed.

``facegate subscribe --door D --key HEX --state-dir DIR --accepted-log FILE``
is a complete lock process: it holds only the door's public key(s), keeps
its replay guard and resume point in ``DIR`` (so it can be killed and
started again without acting twice), survives Redis restarts, and appends
one JSON line per accepted event to ``FILE`` (the lock's "action",
``fsync``-ed), which the fault tests read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from facegate.tools.cli_context import Context, context

# --------------------------------------------------------------------------- printing


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
        return {"verified": False, "rejected": item.rejected, "detail": item.detail,
                "source": item.source}
    doc: dict[str, Any] = item.event.to_dict()
    doc["verified"] = True
    doc["received_at"] = item.received_at
    doc["source"] = item.source
    return doc


# --------------------------------------------------------------------------- keys


def cmd_doors_key(args: argparse.Namespace) -> int:
    from facegate.core import keys

    keys.check_door(args.door)
    ctx = context()
    version = args.key_version
    if version is None:
        version = ctx.store.door_key_version(args.door) + (1 if args.next else 0)
    signer = ctx.signer(args.door, version)
    if args.json:
        print(json.dumps({"door": args.door, "version": version, "kid": signer.kid,
                          "alg": "Ed25519", "public_key": signer.public_key.hex}))
    else:
        print(f"door {args.door}: key version {version}, key id {signer.kid} (Ed25519 public "
              f"key below, for the door's lock)", file=sys.stderr)
        print(signer.public_key.hex)
    return 0


def cmd_doors_rotate_key(args: argparse.Namespace) -> int:
    from facegate.core import keys

    keys.check_door(args.door)
    ctx = context()
    old = ctx.signer(args.door)
    version = ctx.store.rotate_door_key(args.door)
    new = ctx.signer(args.door, version)
    from facegate.core.audit import Action, AdminAction
    from facegate.tools.cli_context import cli_actor

    ctx.store.record_admin(
        AdminAction(cli_actor(), Action.DOOR_KEY_ROTATE, args.door, time.time(),
                    {"version": str(version)})
    )
    print(f"door {args.door}: key version {old.version} -> {version}, key id {old.kid} -> "
          f"{new.kid}. Matchers sign with the new key from their next upload; events signed "
          f"with the old one stay valid until they expire (FACEGATE_EVENT_TTL_S). New public "
          f"key:", file=sys.stderr)
    print(new.public_key.hex)
    return 0


# --------------------------------------------------------------------------- the lock


def lock_redis_url() -> str:
    """Where a lock given its public key reads events when no ``--redis-url``
    is given: ``FACEGATE_REDIS_URL`` (or the local stack's), else the
    default. Nothing else is read: a lock holds no secret, so it must not
    need the services' settings (which require every secret)."""
    from facegate.runtime.settings import CommonSettings
    from facegate.tools.cli_context import client_env

    url = client_env().get("FACEGATE_REDIS_URL", "").strip()
    return url or str(CommonSettings.model_fields["redis_url"].default)


def lock_listener(ctx: Context | None, door: str, key_hex: list[str] | None,
              redis_url: str | None = None, state_dir: Path | None = None) -> Any:
    import redis

    from facegate.clients.lock import DoorListener
    from facegate.clients.lock_state import LockState

    if key_hex:
        public: list[Any] = list(key_hex)
    else:
        ctx = ctx or context()
        public = [ctx.signer(door).public_key]
    if redis_url is None:
        redis_url = ctx.settings.redis_url if ctx is not None else lock_redis_url()
    client = redis.Redis.from_url(redis_url, socket_timeout=10.0, socket_connect_timeout=2.0)
    state = LockState.open(state_dir, door) if state_dir is not None else None
    return DoorListener(client, door, public, state=state)


def _act(log: IO[str], item: Any) -> None:
    """The lock's action for an accepted event: one line, flushed to disk."""
    e = item.event
    log.write(json.dumps({
        "id": e.id, "upload_id": e.upload_id, "door": e.door, "decision": e.decision.value,
        "reason": e.reason.value, "person": e.person, "stream_id": e.stream_id,
        "source": item.source, "accepted_at": item.received_at, "pid": os.getpid(),
    }) + "\n")
    log.flush()
    os.fsync(log.fileno())


def cmd_subscribe(args: argparse.Namespace) -> int:
    ctx = None if args.key else context()  # a lock with its key needs no secret
    listener = lock_listener(ctx, args.door, args.key, args.redis_url, args.state_dir)
    accepted_log = None if args.accepted_log is None else args.accepted_log.open("a")
    print(f"listening on door {args.door} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        listener.subscribe(catch_up_from=args.catch_up, timeout_s=None)
        print(f"subscribed to door {args.door}", file=sys.stderr, flush=True)
        for seen, item in enumerate(listener.events(timeout_s=args.timeout), start=1):
            if item.event is not None and accepted_log is not None:
                _act(accepted_log, item)
            print(json.dumps(event_json(item)) if args.json else format_event(item), flush=True)
            if args.count and seen >= args.count:
                break
    finally:
        listener.close()
        if accepted_log is not None:
            accepted_log.close()
    return 0


# --------------------------------------------------------------------------- registration


def register_key_commands(dsub: Any) -> None:
    """``doors key`` and ``doors rotate-key`` (under the ``doors`` command)."""
    key = dsub.add_parser("key", help="print the door's Ed25519 public key (hex) for its lock")
    key.add_argument("door")
    which = key.add_mutually_exclusive_group()
    which.add_argument("--version", dest="key_version", type=int,
                       help="the key of this version (default: the current one)")
    which.add_argument("--next", action="store_true",
                       help="the key the next rotate-key will bring (install it on the lock "
                       "first)")
    key.add_argument("--json", action="store_true", help="door, version, kid, public_key")
    key.set_defaults(handler=cmd_doors_key)
    rotate = dsub.add_parser("rotate-key", help="move the door to a new signing key (prints "
                             "its public key)")
    rotate.add_argument("door")
    rotate.set_defaults(handler=cmd_doors_rotate_key)


def register(sub: Any) -> None:
    """``facegate subscribe``."""
    subscribe = sub.add_parser("subscribe", help="the lock-side client: print verified events")
    subscribe.add_argument("--door", required=True)
    subscribe.add_argument("--key", action="append", metavar="HEX",
                           help="the door's public key (repeat for old + new while rotating; "
                           "default: the current key, derived from FACEGATE_SIGNING_SECRET)")
    subscribe.add_argument("--redis-url", help="default: FACEGATE_REDIS_URL")
    subscribe.add_argument("--state-dir", type=Path,
                           help="keep the replay guard and resume point here (survives "
                           "restarts: never acts twice, catches up from where it stopped)")
    subscribe.add_argument("--accepted-log", type=Path, metavar="FILE",
                           help="append one JSON line per accepted event (fsync-ed)")
    subscribe.add_argument("--catch-up", metavar="STREAM_ID", nargs="?", const="0-0",
                           help="first replay the door's stream after this id (default all)")
    subscribe.add_argument("--count", type=int, default=0, help="stop after N events")
    subscribe.add_argument("--timeout", type=float, help="stop after S seconds without events")
    subscribe.add_argument("--json", action="store_true")
    subscribe.set_defaults(handler=cmd_subscribe)


__all__ = ["event_json", "format_event", "lock_listener", "register", "register_key_commands"]
