"""What a door event costs on each side: Ed25519 signing (matcher), the
lock's check, its durable replay guard, and a catch-up after a long outage.

``python bench/lock_events.py [--smoke] [--events N] [--state-dir DIR] [--out FILE]``.
Prints a table and writes JSON (default ``bench/results/lock_events.json``):

- ``sign_us``: ``DoorSigner.sign`` of a typical OPEN event (canonical JSON +
  Ed25519), per event;
- ``verify_us``: ``verify_event`` with an in-memory ``ReplayGuard`` (form,
  key, Ed25519, fields, time, guard), per event;
- ``accept_ms``: ``verify_event`` with a persistent ``LockState`` (the
  whole state file written, ``fsync``-ed and renamed before the event is
  handed out), per event, on ``--state-dir`` (default: a temporary folder;
  the figure is the disk's ``fsync`` latency more than anything else);
- ``catch_up_s``: checking a full door stream (``FACEGATE_STREAM_MAXLEN``
  10,000 entries, all expired: what a lock reads after a long outage).

No services needed; median and 95th percentile of single calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe, machine_facts

from facegate.clients.lock_state import LockState
from facegate.core import keys
from facegate.core.event_verify import EventRejected, ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "lock_events.json"
SIGNER = DoorSigner.derive("bench-lock-events-secret-0123456789", "front")


def event(n: int, now: float) -> DoorEvent:
    return DoorEvent(
        id=keys.new_upload_id(), upload_id=keys.new_upload_id(), door="front", camera="cam1",
        decision=Decision.OPEN, reason=Reason.GRANTED, person="alice", distance=0.296,
        issued_at=now, expires_at=now + 30.0, stream_id=f"{int(now * 1000)}-{n}",
        stamps={"uploaded": now - 0.3, "ingested": now - 0.28, "encode_start": now - 0.25,
                "embedded": now - 0.05, "match_start": now - 0.01, "matched": now},
    )


def timed(calls: list[Any]) -> list[float]:
    """Seconds of each call."""
    out = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def summary(seconds: list[float], scale: float) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median": round(statistics.median(ordered) * scale, 3),
        "p95": round(ordered[max(0, int(0.95 * len(ordered)) - 1)] * scale, 3),
        "n": len(ordered),
    }


def bench(events: int, stream_len: int, state_dir: Path) -> dict[str, Any]:
    now = time.time()
    batch = [event(n, now) for n in range(events)]
    wires: list[bytes] = []
    sign = timed([lambda e=e: wires.append(SIGNER.sign(e)) for e in batch])
    public = SIGNER.public_key
    guard = ReplayGuard()
    verify = timed([lambda w=w: verify_event(w, public, "front", now=now, guard=guard)
                    for w in wires])
    fresh = [SIGNER.sign(event(n, now)) for n in range(events)]
    with LockState.open(state_dir, "front", now=now) as state:
        accept = timed([lambda w=w: verify_event(w, public, "front", now=now, guard=state)
                        for w in fresh])
        file_bytes = (state_dir / "front.json").stat().st_size
    old = [SIGNER.sign(event(n, now - 3600)) for n in range(stream_len)]
    t0 = time.perf_counter()
    rejected = 0
    for wire in old:
        try:
            verify_event(wire, public, "front", now=now, guard=guard)
        except EventRejected:
            rejected += 1
    catch_up = time.perf_counter() - t0
    return {
        "wire_bytes": len(wires[0]),
        "sign_us": summary(sign, 1e6),
        "verify_us": summary(verify, 1e6),
        "accept_ms": summary(accept, 1e3),
        "state_file_bytes_after": file_bytes,
        "catch_up_entries": stream_len,
        "catch_up_rejected_expired": rejected,
        "catch_up_s": round(catch_up, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a second in all")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--state-dir", type=Path, help="where the lock state is written")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    events, stream_len = (50, 200) if args.smoke else (args.events, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = args.state_dir or Path(tmp)
        result = bench(events, stream_len, state_dir)
    doc = {"benchmark": "lock_events", "smoke": args.smoke, "machine": machine_facts(),
           "results": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    r = result
    print(f"machine: {describe(doc['machine'])}")
    print(f"wire: {r['wire_bytes']} bytes per event")
    for name, unit in (("sign_us", "us"), ("verify_us", "us"), ("accept_ms", "ms")):
        print(f"{name[:-3]:<8} median {r[name]['median']:>8} {unit}   "
              f"p95 {r[name]['p95']:>8} {unit}   (n={r[name]['n']})")
    print(f"catch-up of {r['catch_up_entries']} expired entries: {r['catch_up_s']} s "
          f"({r['catch_up_rejected_expired']} rejected as expired)")
    print(f"wrote {args.out}")
    ok = r["catch_up_rejected_expired"] == stream_len
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
