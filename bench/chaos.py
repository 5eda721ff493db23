"""Benchmark: the whole pipeline under faults, with figures per fault.

Starts a local stack of its own (``facegate.tools.devstack``: Redis with its
append-only file, SeaweedFS, ingest, one encoder with the real model, one
matcher; ports ``--base-port`` .. +6, default 28300; state in a temporary
folder), enrols two residents, starts one real lock process per door
(``facegate subscribe`` with its persistent state file and its log of
accepted events) and, for each scenario, uploads at ``--rate`` per second
for ``--duration`` seconds (residents, a stranger, a picture without a face,
and now and then an unclaimed object written straight into the bucket: see
``bench/chaos_site.py``) while one fault is injected ``--fault-at`` seconds
in:

=================  ===========================================================
baseline           no fault (the reference row)
kill-encoder       ``kill -9`` of the encoder's process group, then restart
kill-matcher       ``kill -9`` of the matcher, then restart
kill-ingest        ``kill -9`` of ingest, then restart
ingest-down        ingest stopped for ``--ingest-down-s`` (30) while cameras
                   upload; the reconciler must decide those uploads
redis-kill         ``kill -9`` of Redis, restarted 1 s later from its AOF
s3-down            the object store stopped for ``--s3-down-s`` (10)
duplicate-task     for 10 s every task message the workers take is pushed
                   back onto its queue twice more, byte for byte
lock-restart       ``kill -9`` of two locks, restarted 5 s later: they must
                   catch up and accept nothing twice
encoder-netns      the encoder runs in a network namespace of its own (veth
                   to this host, as on another machine); its link is cut for
                   ``--cut-s`` (20) mid-batch, then restored
=================  ===========================================================

Per scenario, over the uploads made during it: sent, refused (the camera
got an error after retrying 20 s: it knows), decided, lost (sent, never
decided within ``--drain-timeout``), duplicated (more than one decision in
the audit stream, or more than one event accepted by the lock), stale OPEN
(issued more than ``FACEGATE_DEADLINE_S`` after the PUT finished), OPEN
without a claim, OPEN where a DENY was due, events the locks missed, OPENs
decided in time that a lock accepted more than the deadline after the
upload (a lock catching up: within the event's life, reported), DENY
``timeout`` (the designed answer to an upload that waited too long), and
the times to recover: from the fault's end to the first correct decision,
and to the last decision of an upload made before the fault ended (the
backlog drained). The goal in every row: 0 lost, 0 duplicated, 0 stale
OPEN, 0 OPEN without a claim.

Usage: ``python bench/chaos.py [--scenario NAME ...] [--duration 40]
[--rate 3] [--out bench/results/chaos.json]``. Prints a table, writes JSON;
exits 1 when a goal column is not zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos_faults import HOST_ADDR, OtherHost, Republisher, netns_unavailable
from chaos_site import Building, Upload, open_building
from machine import describe, load_average, machine_facts

from facegate.tools.devstack import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "chaos.json"
DEFAULT_BASE_PORT = 28300
GOALS = ("lost", "duplicated", "stale_open", "unclaimed_open", "wrong_open")

log = logging.getLogger("bench.chaos")


@dataclass
class Fault:
    """What a scenario's injection did: when the fault began and ended."""

    start: float = 0.0
    end: float = 0.0
    note: str = ""
    error: str = ""


Inject = Callable[[Building, argparse.Namespace, Fault], None]


def _kill_restart(name: str) -> Inject:
    def inject(b: Building, args: argparse.Namespace, fault: Fault) -> None:
        fault.start = time.time()
        pid = b.stack.kill(name)
        if name == "redis":
            time.sleep(1.0)
        b.stack.start(name)
        fault.end = time.time()
        fault.note = f"pid {pid} killed; back after {fault.end - fault.start:.1f} s"
    return inject


def _down(name: str, attr: str) -> Inject:
    def inject(b: Building, args: argparse.Namespace, fault: Fault) -> None:
        fault.start = time.time()
        b.stack.stop(name)
        time.sleep(max(0.0, getattr(args, attr) - (time.time() - fault.start)))
        b.stack.start(name)
        fault.end = time.time()
        fault.note = f"down {fault.end - fault.start:.1f} s (until ready again)"
    return inject


def _duplicates(b: Building, args: argparse.Namespace, fault: Fault) -> None:
    fault.start = time.time()
    rep = Republisher(b.broker, copies=2)
    rep.start()
    time.sleep(args.dup_s)
    n = rep.stop()
    fault.end = time.time()
    fault.note = f"{n} extra copies of {len(rep.seen)} task messages"


def _lock_restart(b: Building, args: argparse.Namespace, fault: Fault) -> None:
    doors = list(b.doors)[:2]
    fault.start = time.time()
    for door in doors:
        b.kill_lock(door)
    time.sleep(args.lock_down_s)
    for door in doors:
        b.start_lock(door)
    fault.end = time.time()
    fault.note = f"locks {', '.join(doors)} down {fault.end - fault.start:.1f} s"


def _netns_cut(b: Building, args: argparse.Namespace, fault: Fault) -> None:
    host: OtherHost = b.extra["netns"]
    fault.start = time.time()
    host.cut()
    time.sleep(args.cut_s)
    host.restore()
    fault.end = time.time()
    fault.note = f"link down {fault.end - fault.start:.1f} s"


def _netns_setup(b: Building, args: argparse.Namespace) -> None:
    """An encoder in its own namespace takes over from the host's one."""
    cfg = b.stack.config
    host = OtherHost([cfg.redis_port, cfg.s3_port])
    b.extra["netns"] = host
    host.setup()
    env = b.stack._python_env()
    env["FACEGATE_REDIS_URL"] = f"redis://{HOST_ADDR}:{cfg.redis_port}/{cfg.redis_db}"
    env["FACEGATE_BROKER_URL"] = f"redis://{HOST_ADDR}:{cfg.redis_port}/{cfg.broker_db}"
    env["FACEGATE_S3_ENDPOINT"] = f"{HOST_ADDR}:{cfg.s3_port}"
    env["FACEGATE_S3_PUBLIC_ENDPOINT"] = env["FACEGATE_S3_ENDPOINT"]
    ready = b.stack.run_dir / "encoder-ns.ready"
    ready.unlink(missing_ok=True)
    host.start_encoder(
        [sys.executable, "-m", "services.encoder", "--ready-file", str(ready),
         "--hostname", "encoder-ns@%h"],
        env, ROOT, b.stack.log_dir / "encoder-ns.log")
    deadline = time.monotonic() + 600
    while not ready.exists():
        if host.proc is None or host.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the encoder in the namespace did not start: "
                               + b.stack.tail("encoder-ns", 15))
        time.sleep(0.2)
    b.stack.stop("encoder-1")  # every upload now goes to the other host


def _netns_teardown(b: Building, args: argparse.Namespace) -> None:
    host = b.extra.pop("netns", None)
    try:
        b.stack.start("encoder-1")
    finally:
        if host is not None:
            host.close()


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Inject | None
    unavailable: Callable[[], str | None] = lambda: None
    setup: Callable[[Building, argparse.Namespace], None] | None = None
    teardown: Callable[[Building, argparse.Namespace], None] | None = None


SCENARIOS = {s.name: s for s in (
    Scenario("baseline", None),
    Scenario("kill-encoder", _kill_restart("encoder-1")),
    Scenario("kill-matcher", _kill_restart("matcher-1")),
    Scenario("kill-ingest", _kill_restart("ingest")),
    Scenario("ingest-down", _down("ingest", "ingest_down_s")),
    Scenario("redis-kill", _kill_restart("redis")),
    Scenario("s3-down", _down("seaweedfs", "s3_down_s")),
    Scenario("duplicate-task", _duplicates),
    Scenario("lock-restart", _lock_restart),
    Scenario("encoder-netns", _netns_cut, netns_unavailable,
             _netns_setup, _netns_teardown),
)}


# --------------------------------------------------------------------------- one scenario


def drain(b: Building, ids: Sequence[str], since_ms: int, timeout_s: float) -> float:
    """Wait until every upload is decided (up to ``timeout_s``), then until
    the locks accepted those events (up to 15 s more)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        audit = b.audit(since_ms)
        if all(u in audit for u in ids):
            break
        time.sleep(0.5)
    t1 = time.monotonic()
    while time.monotonic() - t1 < 15.0:
        accepted = b.accepted()
        if all(u in accepted for u in ids):
            break
        time.sleep(0.5)
    time.sleep(3.0)  # a duplicate, if any, arrives too
    return time.monotonic() - t0


def score(b: Building, sent: list[Upload], refused: list[Upload], since_ms: int,
          fault: Fault | None) -> dict[str, Any]:
    audit = b.audit(since_ms)
    accepted = b.accepted()
    row: dict[str, Any] = {
        "sent": len(sent), "refused": len(refused), "decided": 0, "lost": 0, "duplicated": 0,
        "stale_open": 0, "unclaimed_open": 0, "wrong_open": 0, "lock_missed": 0,
        "lock_caught_up": 0, "late_open_at_lock": 0,
        "timeouts": 0, "other_deny": Counter(), "examples": [],
    }
    first_ok: float | None = None
    drained = 0.0
    for u in sent:
        events = audit.get(u.upload_id, [])
        at_lock = accepted.get(u.upload_id, [])
        if not events:
            row["lost"] += 1
            row["examples"].append(f"lost {u.upload_id} ({u.kind} at {u.door})")
            continue
        row["decided"] += 1
        if len(events) > 1 or len(at_lock) > 1:
            row["duplicated"] += 1
            row["examples"].append(f"{len(events)} decisions, {len(at_lock)} accepted: "
                                   f"{u.upload_id}")
        e = min(events, key=lambda ev: float(ev["issued_at"]))
        decision, reason, issued = e["decision"], e["reason"], float(e["issued_at"])
        if not at_lock:
            row["lock_missed"] += 1
        row["lock_caught_up"] += sum(1 for a in at_lock if a.get("source") == "stream")
        if decision == "OPEN":
            if issued - u.put_done > b.deadline_s:
                row["stale_open"] += 1
                row["examples"].append(f"stale OPEN {u.upload_id}: {issued - u.put_done:.1f} s")
            if not u.claimed:
                row["unclaimed_open"] += 1
                row["examples"].append(f"unclaimed OPEN {u.upload_id}")
            if at_lock and min(float(a["accepted_at"]) for a in at_lock) - u.put_done \
                    > b.deadline_s:
                row["late_open_at_lock"] += 1  # fresh when decided, late at the door
            if u.expect[0] != "OPEN":
                row["wrong_open"] += 1
                row["examples"].append(f"OPEN for {u.kind} {u.upload_id}")
        if reason == "timeout":
            row["timeouts"] += 1
        elif (decision, reason) != u.expect:
            row["other_deny"][f"{decision} {reason} (expected {' '.join(u.expect)})"] += 1
        if fault is not None and fault.end:
            if issued >= fault.end and (decision, reason) == u.expect:
                first_ok = issued if first_ok is None else min(first_ok, issued)
            if u.put_done <= fault.end:
                drained = max(drained, issued - fault.end)
    row["other_deny"] = dict(row["other_deny"])
    row["examples"] = row["examples"][:8]
    row["recover_first_s"] = None if first_ok is None else round(first_ok - fault.end, 2) \
        if fault else None
    row["recover_drained_s"] = round(drained, 2) if fault and fault.end else None
    row["lock_rejections"] = dict(b.lock_rejections())
    return row


def run_scenario(b: Building, sc: Scenario, args: argparse.Namespace, seed: int
                 ) -> dict[str, Any]:
    why = sc.unavailable()
    if why is not None:
        return {"scenario": sc.name, "skipped": why}
    if sc.setup is not None:
        sc.setup(b, args)
    try:
        since_ms = int(time.time() * 1000) - 1
        fault = Fault() if sc.inject is not None else None
        thread: threading.Thread | None = None

        def keep_going(elapsed: float) -> bool:
            """``--duration`` at least, and ``--tail`` seconds past the fault's end."""
            if elapsed < args.duration:
                return True
            if thread is None or fault is None:
                return False
            return thread.is_alive() or time.time() < fault.end + args.tail

        def injector() -> None:
            assert sc.inject is not None and fault is not None
            time.sleep(args.fault_at + 1.0)
            try:
                sc.inject(b, args, fault)
            except Exception as exc:
                fault.error = f"{type(exc).__name__}: {exc}"[:300]
                if not fault.end:
                    fault.end = time.time()

        if fault is not None:
            thread = threading.Thread(target=injector, daemon=True)
            thread.start()
        t0 = time.time()
        uploads = b.run_load(args.rate, seed, keep_going)
        seconds = time.time() - t0
        if thread is not None:
            thread.join()
        sent = [u for u in uploads if not u.refused]
        refused = [u for u in uploads if u.refused]
        waited = drain(b, [u.upload_id for u in sent], since_ms, args.drain_timeout)
        row = score(b, sent, refused, since_ms, fault)
        row.update({"scenario": sc.name, "load_s": round(seconds, 1), "drain_s": round(waited, 1),
                    "refused_examples": [u.refused for u in refused][:3]})
        if fault is not None:
            row["fault"] = {"start_s": round(fault.start - t0, 2),
                            "end_s": round(fault.end - t0, 2),
                            "note": fault.note, "error": fault.error}
        return row
    finally:
        if sc.teardown is not None:
            sc.teardown(b, args)
        heal(b)


def heal(b: Building) -> None:
    """Every process of the stack and every lock running again."""
    b.stack.up()
    for door, lock in b.locks.items():
        if lock.proc is None or lock.proc.poll() is not None:
            b.start_lock(door)


# --------------------------------------------------------------------------- report


def fmt_row(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{r['scenario']:<15} not run: {r['skipped']}"
    if "error" in r:
        return f"{r['scenario']:<15} failed: {r['error']}"

    def s(v: Any) -> str:
        return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    return (f"{r['scenario']:<15} {r['sent']:>5} {r['refused']:>4} {r['decided']:>5} "
            f"{r['lost']:>4} {r['duplicated']:>4} {r['stale_open']:>6} {r['unclaimed_open']:>6} "
            f"{r['wrong_open']:>5} {r['lock_missed']:>5} {r['late_open_at_lock']:>5} "
            f"{r['timeouts']:>5} "
            f"{s(r.get('recover_first_s')):>7} {s(r.get('recover_drained_s')):>7}")


HEADER = (f"{'scenario':<15} {'sent':>5} {'ref':>4} {'decid':>5} {'lost':>4} {'dup':>4} "
          f"{'staleO':>6} {'uncl.O':>6} {'wrgO':>5} {'lockM':>5} {'lateL':>5} {'tmout':>5} "
          f"{'first_s':>7} {'drain_s':>7}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n" + HEADER)
    for r in rows:
        print(fmt_row(r))
    print("\nref: refused (the camera saw the error); staleO: OPEN older than the deadline; "
          "uncl.O: OPEN without a claim; wrgO: OPEN where DENY was due; lockM: decided but "
          "never accepted by its lock; lateL: OPEN decided in time but accepted by the lock more "
          "than the deadline after the upload (a lock that caught up; within the event's "
          "life); tmout: DENY timeout; first_s / drain_s: seconds from "
          "the fault's end to the first correct decision / to the last decision of an upload "
          "made before it ended")
    for r in rows:
        extra = {k: r[k] for k in ("fault", "other_deny", "examples", "lock_rejections")
                 if r.get(k)}
        if extra:
            print(f"  {r['scenario']}: {json.dumps(extra)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                        help="repeatable (default: all)")
    parser.add_argument("--duration", type=float, default=40.0,
                        help="seconds of load per scenario (longer when its fault needs it)")
    parser.add_argument("--rate", type=float, default=3.0, help="uploads/s over all doors")
    parser.add_argument("--doors", type=int, default=4)
    parser.add_argument("--mix", default="0.6,0.2,0.2",
                        help="fractions of residents, strangers, no-face pictures")
    parser.add_argument("--fault-at", type=float, default=8.0, help="seconds into the load")
    parser.add_argument("--ingest-down-s", type=float, default=30.0)
    parser.add_argument("--s3-down-s", type=float, default=10.0)
    parser.add_argument("--dup-s", type=float, default=10.0)
    parser.add_argument("--lock-down-s", type=float, default=5.0)
    parser.add_argument("--cut-s", type=float, default=20.0)
    parser.add_argument("--tail", type=float, default=10.0,
                        help="seconds of load after a fault ended (at least)")
    parser.add_argument("--drain-timeout", type=float, default=360.0,
                        help="seconds after the load before an undecided upload is lost "
                        "(longer than FACEGATE_RECONCILE_RETRY_S: an upload whose task "
                        "message was lost is sent again after that long)")
    parser.add_argument("--reconcile-interval", type=float,
                        help="FACEGATE_RECONCILE_INTERVAL_S (default: the service's, 10)")
    parser.add_argument("--reconcile-grace", type=float,
                        help="FACEGATE_RECONCILE_GRACE_S (default: the service's, 30)")
    parser.add_argument("--reconcile-retry", type=int,
                        help="FACEGATE_RECONCILE_RETRY_S (default: the service's, 300)")
    parser.add_argument("--visibility-timeout", type=int,
                        help="FACEGATE_VISIBILITY_TIMEOUT_S (default: the service's, 60)")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    parser.add_argument("--state-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # the cameras' retries, counted
    mix = tuple(float(x) for x in args.mix.split(","))
    if len(mix) != 3:
        parser.error("--mix takes three fractions")
    names = args.scenario or list(SCENARIOS)
    extra = {"FACEGATE_LOG_LEVEL": "WARNING"}
    for opt, var in (("reconcile_interval", "FACEGATE_RECONCILE_INTERVAL_S"),
                     ("reconcile_grace", "FACEGATE_RECONCILE_GRACE_S"),
                     ("reconcile_retry", "FACEGATE_RECONCILE_RETRY_S"),
                     ("visibility_timeout", "FACEGATE_VISIBILITY_TIMEOUT_S")):
        if getattr(args, opt) is not None:
            extra[var] = str(getattr(args, opt))
    facts = machine_facts()
    print(f"machine: {describe(facts)}", flush=True)
    doc: dict[str, Any] = {
        "benchmark": "chaos",
        "command": " ".join(["python", "bench/chaos.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": facts, "rate": args.rate, "duration_s": args.duration,
        "stack_env": extra, "rows": [],
    }
    tmp = tempfile.TemporaryDirectory(prefix="facegate-chaos-")
    state = args.state_dir or Path(tmp.name)
    stack = Stack(StackConfig.for_tests(args.base_port, state_dir=state / "stack",
                                        ready_timeout_s=600.0, extra_env=extra))
    building: Building | None = None
    try:
        stack.down()
        t0 = time.monotonic()
        stack.up()
        building = open_building(stack, args.doors, (mix[0], mix[1], mix[2]), state)
        doc["stack_start_s"] = round(time.monotonic() - t0, 1)
        print(f"stack and {args.doors} locks ready in {doc['stack_start_s']} s", flush=True)
        for n, name in enumerate(names):
            print(f"== {name}", flush=True)
            try:
                row = run_scenario(building, SCENARIOS[name], args, seed=100 + n)
            except Exception as exc:
                row = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"[:400]}
            row["load_average_after"] = load_average()
            doc["rows"].append(row)
            print(fmt_row(row), flush=True)
    finally:
        if building is not None:
            building.stop_locks()
        stack.down()
        tmp.cleanup()
    print_table(doc["rows"])
    ran = [r for r in doc["rows"] if "sent" in r]
    doc["goals_met"] = bool(ran) and all(r[g] == 0 for r in ran for g in GOALS) and not any(
        "error" in r for r in doc["rows"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return 0 if doc["goals_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
