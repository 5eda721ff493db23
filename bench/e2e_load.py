"""Benchmark: the whole pipeline under load, on a local stack of its own.

Starts Redis, SeaweedFS, ingest, N encoder and one matcher process
(``facegate.tools.devstack``; ports ``--base-port`` .. +6, default 27400; state in a
temporary folder; stopped at the end), configures ``--doors`` doors (half
badge + face, half face only), enrols two residents through the encoder
(face_recognition's sample photos of Obama and Biden), then, acting as the
doors' cameras, uploads snapshots through presigned PUTs at a fixed total rate
R for T seconds (open loop: an upload is sent on schedule whether or not the
earlier ones were decided). The mix is residents (expected OPEN), an unknown
face (NASA's astronaut portrait: DENY below_threshold / unknown_person) and a
picture without a face (DENY no_face).

Acting as the doors' locks, it subscribes to every door's channel and checks
every event with that door's key (``DoorListener.check``: signature, door,
expiry, replay). Reported per run:

- latency from the start of the PUT (the presigned URL in hand) to the
  verified event at the lock: p50/p90/p99/max (also from the presign request);
- achieved throughput (decisions/s) against the offered rate;
- lost decisions (no verified event within ``--drain-timeout`` after the last
  upload) and duplicated ones (a second verified event, or a replay, for an
  upload; also counted in the audit stream): both must be 0;
- decisions other than the expected one (``timeout`` denials, an overloaded
  pipeline's designed answer to uploads older than ``FACEGATE_DEADLINE_S``,
  are counted apart);
- where the time goes, from the event's stamps: put_notify (PUT start ->
  the store wrote the object), ingest (-> the bucket event reached ingest and
  it sent the task), queue wait (-> encoder batch start),
  fetch, decode, engine wait (decoded -> the engine takes the batch: the
  pipelined encoder's hand-off), detect, embed, to matcher (encoder done ->
  match start; includes the wait for the encoder's answer stage),
  match, publish (-> the lock verified it); and the encoder batch sizes seen
  (uploads sharing one ``encode_start`` stamp were one batch).

Modes:

- default: one run at ``--rate`` for ``--duration``;
- ``--find-max``: steps the rate up (x ``--factor``) until a step fails (p99
  over ``--p99-limit-ms``, a lost or duplicated decision, an upload error),
  then bisects ``--refine`` times; reports the highest rate that passed; one
  last step at ``--overload`` times the highest rate tried measures the
  capacity (decisions/s while overloaded);
- ``--scaling "1x1,1x16,2x16"``: ``--find-max`` for each ``encoders x
  batch size`` configuration, each on a fresh stack: the sustained rate and
  the capacity (decisions/s while overloaded);
- ``--smoke``: 2 doors, 2 uploads/s for 3 s (tests/bench/test_bench_e2e_smoke.py).

Usage: ``python bench/e2e_load.py [--rate 4 --duration 30] [--find-max]
[--scaling SPEC] [--encoders N] [--batch-size B] [--batch-wait-ms W] [--smoke]``.
Prints tables and writes JSON (default ``bench/results/e2e_load.json``) and,
for the ladder modes, a PNG beside it.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from machine import describe, load_average, machine_facts

from facegate.tools.devstack import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "e2e_load.json"
DEFAULT_BASE_PORT = 27400
THRESHOLD = 0.6
RESIDENTS = {"obama": ("obama.jpg", "obama2.jpg"), "biden": ("biden.jpg",)}

STAGES = (
    ("put_notify", "put_start", "uploaded"),
    ("ingest", "uploaded", "ingested"),
    ("queue_wait", "ingested", "encode_start"),
    ("fetch", "encode_start", "fetched"),
    ("decode", "fetched", "decoded"),
    ("engine_wait", "decoded", "engine_start"),
    ("detect", "engine_start", "detected"),
    ("embed", "detected", "embedded"),
    ("to_matcher", "embedded", "match_start"),
    ("match", "match_start", "matched"),
    ("publish", "matched", "received"),
)
"""(name, from, to): the stamps of a door event plus the client's own
``put_start`` and ``received`` times; consecutive, so the stages add up to the
upload-to-event latency. ``uploaded`` is when the object store wrote the
object (SeaweedFS's chunk write time, from its event body), so ``put_notify``
is the PUT up to the write and ``ingest`` runs from the write through the
bucket event to ingest's send."""

log = logging.getLogger("bench.e2e_load")


# --------------------------------------------------------------------------- pictures


@dataclass(frozen=True)
class Picture:
    name: str
    data: bytes
    ext: str
    kind: str
    """``known`` (a resident), ``unknown`` (nobody enrolled) or ``noface``."""
    person: str | None = None


def _camera_jpeg(data: bytes, size: int, mirror: bool = False) -> bytes:
    """The photo as a door camera would send it: longest side ``size`` px."""
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if mirror:
        image = ImageOps.mirror(image)
    if size > 0:
        image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def load_pictures(camera_size: int) -> tuple[dict[str, list[tuple[str, bytes]]], list[Picture]]:
    """Enrolment photos per resident, and the snapshots the cameras send."""
    from facegate.tools.demo import no_face_picture
    from facegate.tools.samples import astronaut_path, sample_faces_dir

    faces = sample_faces_dir()
    enrol = {
        person: [(n, (faces / n).read_bytes()) for n in names]
        for person, names in RESIDENTS.items()
    }
    raw = {n: (faces / n).read_bytes() for n in ("obama3.jpg", "biden.jpg")}
    snapshots = [
        Picture("obama3.jpg", _camera_jpeg(raw["obama3.jpg"], camera_size), "jpg", "known",
                "obama"),
        Picture("biden-mirrored.jpg", _camera_jpeg(raw["biden.jpg"], camera_size, mirror=True),
                "jpg", "known", "biden"),
        Picture("astronaut.jpg", _camera_jpeg(astronaut_path().read_bytes(), camera_size),
                "jpg", "unknown"),
        Picture("landscape.jpg", no_face_picture(), "jpg", "noface"),
    ]
    return enrol, snapshots


def expected(picture: Picture, mode: str) -> tuple[str, str]:
    """The decision a correct pipeline makes (verify doors get the resident's
    badge, obama's for the unknown face: an impostor)."""
    if picture.kind == "known":
        return "OPEN", "granted"
    if picture.kind == "noface":
        return "DENY", "no_face"
    return ("DENY", "below_threshold") if mode == "verify" else ("DENY", "unknown_person")


def badge_for(picture: Picture, mode: str) -> str | None:
    if mode != "verify" or picture.kind == "noface":
        return None
    return picture.person or "obama"


# --------------------------------------------------------------------------- the site


@dataclass
class Sent:
    upload_id: str
    door: str
    picture: Picture
    expect: tuple[str, str]
    scheduled: float
    started: float
    put_start: float
    put_done: float


@dataclass
class Got:
    received: float
    decision: str
    reason: str
    stamps: dict[str, float]
    event_id: str


@dataclass
class LockSide:
    """Every door's lock in one thread: one pub/sub connection subscribed to
    all door channels, each message checked with its door's listener."""

    client: Any
    listeners: dict[str, Any]
    events: dict[str, list[Got]] = field(default_factory=lambda: defaultdict(list))
    rejected: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        from facegate.core import keys

        channels = {keys.door_channel(door): door for door in self.listeners}
        pubsub = self.client.pubsub(ignore_subscribe_messages=False)
        pubsub.subscribe(*channels)
        confirmed = 0
        deadline = time.monotonic() + 10.0
        while confirmed < len(channels) and time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=0.5)
            if msg is not None and msg.get("type") == "subscribe":
                confirmed += 1
        if confirmed < len(channels):
            raise SystemExit(f"only {confirmed} of {len(channels)} door subscriptions confirmed")

        def run() -> None:
            try:
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.2)
                    if msg is None or msg.get("type") != "message":
                        continue
                    channel = msg["channel"]
                    door = channels[channel.decode() if isinstance(channel, bytes) else channel]
                    data = msg["data"]
                    item = self.listeners[door].check(
                        data if isinstance(data, bytes) else str(data).encode()
                    )
                    with self._lock:
                        self.messages += 1
                        if item.event is None:
                            self.rejected[item.rejected or "?"] += 1
                            continue
                        event = item.event
                        self.events[event.upload_id].append(
                            Got(item.received_at, event.decision.value, event.reason.value,
                                dict(event.stamps), event.id)
                        )
            finally:
                pubsub.close()

        self._thread = threading.Thread(target=run, name="locks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def snapshot(self, upload_ids: Sequence[str]) -> dict[str, list[Got]]:
        with self._lock:
            return {u: list(self.events[u]) for u in upload_ids if u in self.events}


@dataclass
class Site:
    """A running stack, its doors and residents, the cameras and the locks."""

    stack: Stack
    camera: Any
    client: Any
    locks: LockSide
    doors: dict[str, str]
    """door -> mode"""
    pictures: list[Picture]
    weights: list[float]

    def close(self) -> None:
        self.locks.stop()
        self.client.close()


def open_site(
    stack: Stack, doors: int, pictures: list[Picture], weights: list[float],
    enrol: dict[str, list[tuple[str, bytes]]],
) -> Site:
    import redis

    from facegate.adapters.celery_app import make_celery, send_encode
    from facegate.adapters.objectstore import MinioObjectStore
    from facegate.adapters.redis_store import RedisStore
    from facegate.clients.admin import Admin
    from facegate.clients.camera import CameraClient
    from facegate.clients.lock import DoorListener
    from facegate.core.policy import DoorMode, DoorPolicy
    from facegate.core.signing import DoorSigner
    from facegate.runtime.settings import CommonSettings

    env = stack.env()
    settings = CommonSettings.from_env(env)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30.0)
    store = RedisStore(client)
    celery = make_celery(settings, "facegate-bench")
    admin = Admin(settings, store, MinioObjectStore(settings), lambda r: send_encode(celery, r))
    modes: dict[str, str] = {}
    for i in range(doors):
        door = f"door{i:02d}"
        mode = DoorMode.VERIFY if i % 2 == 0 else DoorMode.IDENTIFY
        allowed = frozenset() if mode is DoorMode.VERIFY else frozenset({"*"})
        admin.set_door(DoorPolicy(door, mode, allowed, THRESHOLD))
        modes[door] = mode.value
    for person, photos in enrol.items():
        admin.enroll(person, photos, doors=list(modes), timeout_s=300.0)
    listeners = {
        door: DoorListener(
            client,
            door,
            DoorSigner.derive(
                settings.signing_secret.get_secret_value(), door, store.door_key_version(door)
            ).public_key,
        )
        for door in modes
    }
    locks = LockSide(client, listeners)
    locks.start()
    camera = CameraClient(stack.config.ingest_url, env["FACEGATE_CAMERA_TOKEN"], timeout_s=30.0)
    return Site(stack, camera, client, locks, modes, pictures, weights)


# --------------------------------------------------------------------------- one load step


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each process of the stack
    (``/proc/<pid>/stat``) and by this load generator (cameras and locks)."""
    tick = float(os.sysconf("SC_CLK_TCK"))
    out: dict[str, float] = {}
    for name in stack.process_names():
        pid = stack.running_pid(name)
        if pid is None:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    mine = os.times()
    out["load generator"] = mine.user + mine.system
    return out


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }


def audit_counts(client: Any, since_ms: int) -> Counter[str]:
    """Decisions recorded in the audit stream since ``since_ms``, per upload."""
    from facegate.core import keys

    counts: Counter[str] = Counter()
    start = f"{since_ms}-0"
    while True:
        entries = client.xrange(keys.AUDIT_STREAM, min=start, count=1000)
        if not entries:
            return counts
        for _entry_id, fields in entries:
            wire = fields.get(b"event") or fields.get("event")
            if wire is not None:
                try:
                    counts[str(json.loads(wire)["event"]["upload_id"])] += 1
                except (ValueError, KeyError, TypeError):
                    counts["?"] += 1
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def settle(site: Site, ids: Sequence[str], have: int, timeout_s: float) -> int:
    """Wait (up to ``timeout_s``) for the events still missing; how many came."""
    if have == len(ids):
        return 0
    deadline = time.monotonic() + timeout_s
    now_have = have
    while time.monotonic() < deadline:
        now_have = len(site.locks.snapshot(ids))
        if now_have == len(ids):
            break
        time.sleep(0.2)
    return now_have - have


def run_step(
    site: Site, rate: float, duration: float, *, drain_s: float, seed: int, threads: int = 16,
    label: str = "", settle_s: float = 300.0,
) -> dict[str, Any]:
    """Upload at ``rate`` per second for ``duration`` s, wait for the events."""
    rng = random.Random(seed)
    door_names = list(site.doors)
    count = max(1, round(rate * duration))
    plan = []
    # every picture once first (so a short run sees each kind), then drawn by weight
    pictures = [p for p, w in zip(site.pictures, site.weights, strict=True) if w > 0]
    for i in range(count):
        door = door_names[i % len(door_names)]
        if i < len(pictures):
            picture = pictures[i]
        else:
            picture = rng.choices(site.pictures, weights=site.weights)[0]
        plan.append((door, picture))
    sent: list[Sent] = []
    errors: list[str] = []
    sent_lock = threading.Lock()
    load_before = load_average()
    cpu_before = cpu_seconds(site.stack)
    audit_since_ms = int(time.time() * 1000) - 1

    def upload(scheduled: float, door: str, picture: Picture) -> None:
        mode = site.doors[door]
        started = time.time()
        try:
            ticket = site.camera.presign(door, "cam1", badge_for(picture, mode), ext=picture.ext)
            put_start = time.time()
            site.camera.put(ticket, picture.data)
        except Exception as exc:  # a refused or failed upload is a result, not a crash
            with sent_lock:
                errors.append(f"{door}: {exc}")
            return
        done = time.time()
        with sent_lock:
            sent.append(Sent(ticket.upload_id, door, picture, expected(picture, mode),
                             scheduled, started, put_start, done))

    lateness: list[float] = []
    t0 = time.time() + 0.2
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="camera") as pool:
        for i, (door, picture) in enumerate(plan):
            due = t0 + i / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            lateness.append(max(0.0, time.time() - due))
            pool.submit(upload, due, door, picture)
    uploads_done = time.time()

    # drain: every upload gets its event, or the timeout passes
    ids = [s.upload_id for s in sent]
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline:
        got = site.locks.snapshot(ids)
        if len(got) == len(ids):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # let a duplicate, if any, arrive too
    got = site.locks.snapshot(ids)
    # An overloaded step leaves a backlog; let it clear (so it cannot slow the
    # next step down) and count what arrived after the drain timeout.
    late = settle(site, ids, len(got), settle_s)
    cpu_after = cpu_seconds(site.stack)
    cpu_used = {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}

    latencies, from_start = [], []
    stage_values: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    unexpected: Counter[str] = Counter()
    timeouts = 0
    duplicated = 0
    batches: Counter[float] = Counter()
    received: list[float] = []
    for s in sent:
        events = got.get(s.upload_id, [])
        if not events:
            continue
        duplicated += len(events) - 1  # a repeated event id is a "replayed" rejection
        first = min(events, key=lambda e: e.received)
        received.append(first.received)
        latencies.append(1000.0 * (first.received - s.put_start))
        from_start.append(1000.0 * (first.received - s.started))
        if first.reason == "timeout":
            # older than FACEGATE_DEADLINE_S when matched: the designed DENY
            # of an overloaded pipeline, counted apart from wrong decisions
            timeouts += 1
        elif (first.decision, first.reason) != s.expect:
            unexpected[f"{s.picture.name}@{site.doors[s.door]}: {first.decision} "
                       f"{first.reason} (expected {' '.join(s.expect)})"] += 1
        marks = {**first.stamps, "put_start": s.put_start, "received": first.received}
        for name, a, b in STAGES:
            if a in marks and b in marks:
                stage_values[name].append(1000.0 * (marks[b] - marks[a]))
        if "encode_start" in first.stamps:
            batches[first.stamps["encode_start"]] += 1
    lost = [s.upload_id for s in sent if s.upload_id not in got]
    replayed = site.locks.rejected.get("replayed", 0)
    audit = audit_counts(site.client, audit_since_ms)
    ours = {s.upload_id for s in sent}
    audit_dups = sum(n - 1 for u, n in audit.items() if u in ours and n > 1)
    decided = len(latencies)
    # decisions per second between the first and the last one: the offered
    # rate when the pipeline keeps up, its capacity when it is overloaded
    span = max(received) - min(received) if decided > 1 else 0.0
    throughput = (decided - 1) / span if span > 0 else 0.0
    sizes = list(batches.values())
    result = {
        "label": label,
        "offered_rate": rate,
        "duration_s": duration,
        "uploads_planned": count,
        "uploads_sent": len(sent),
        "upload_errors": len(errors),
        "upload_error_examples": errors[:5],
        "generator_max_lateness_ms": 1000.0 * max(lateness, default=0.0),
        "achieved_upload_rate": len(sent) / max(uploads_done - t0, 1e-9),
        "decisions": decided,
        "throughput": throughput,
        "lost": len(lost),
        "lost_examples": lost[:5],
        "arrived_after_drain": late,
        "duplicated": duplicated + replayed + audit_dups,
        "duplicates": {"extra_events": duplicated, "replayed": replayed,
                       "audit_stream_extra": audit_dups},
        "rejected_by_locks": dict(site.locks.rejected),
        "unexpected_decisions": sum(unexpected.values()),
        "timeouts": timeouts,
        "unexpected_examples": dict(unexpected.most_common(5)),
        "latency_ms": percentiles(latencies),
        "latency_from_presign_ms": percentiles(from_start),
        "stages_ms": {name: percentiles(v) for name, v in stage_values.items()},
        "encoder_batches": {"count": len(sizes), "mean_size": float(np.mean(sizes))
                            if sizes else 0.0, "max_size": max(sizes, default=0)},
        "mix": dict(Counter(s.picture.kind for s in sent)),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu_s": cpu_used,
        "cpu_ms_per_upload": {k: 1000.0 * v / max(len(sent), 1) for k, v in cpu_used.items()},
    }
    site.locks.rejected.clear()
    return result


def passed(step: dict[str, Any], p99_limit_ms: float) -> bool:
    p99 = step["latency_ms"]["p99"]
    return (
        p99 is not None
        and p99 <= p99_limit_ms
        and step["lost"] == 0
        and step["duplicated"] == 0
        and step["upload_errors"] == 0
    )


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunConfig:
    encoders: int
    batch_size: int
    batch_wait_ms: int
    doors: int
    matchers: int = 1

    @property
    def name(self) -> str:
        return f"{self.encoders} encoder(s), B={self.batch_size}, wait {self.batch_wait_ms} ms"


def start_stack(cfg: RunConfig, base_port: int, state: Path) -> Stack:
    extra = {
        "FACEGATE_BATCH_SIZE": str(cfg.batch_size),
        "FACEGATE_BATCH_WAIT_MS": str(cfg.batch_wait_ms),
        "FACEGATE_LOG_LEVEL": "WARNING",
    }
    stack = Stack(StackConfig.for_tests(
        base_port, state_dir=state, encoders=cfg.encoders, matchers=cfg.matchers,
        ready_timeout_s=300.0, extra_env=extra,
    ))
    stack.down()
    stack.up()
    return stack


def warm_up(site: Site, batch_size: int, encoders: int) -> None:
    """Trace the encoder's graphs for the batch sizes a load will meet: a
    burst of a few full batches, then singles (not measured)."""
    burst = max(4, 2 * batch_size * encoders)
    run_step(site, rate=200.0, duration=burst / 200.0, drain_s=180.0, seed=1, label="warm-up")
    run_step(site, rate=2.0, duration=2.0, drain_s=60.0, seed=2, label="warm-up")


def ladder(
    site: Site, args: argparse.Namespace, label: str
) -> tuple[list[dict[str, Any]], float | None, float]:
    """Step the rate up until a step fails, then bisect. Returns the steps,
    the best passing rate and the best throughput seen (the capacity)."""
    steps: list[dict[str, Any]] = []
    best_pass: float | None = None
    first_fail: float | None = None
    rate = args.start_rate
    seed = 10

    def step(r: float) -> bool:
        nonlocal seed
        seed += 1
        result = run_step(site, r, args.duration, drain_s=args.drain_timeout, seed=seed,
                          label=label)
        result["passed"] = passed(result, args.p99_limit_ms)
        steps.append(result)
        print_step(result)
        time.sleep(args.pause)
        return bool(result["passed"])

    for _ in range(args.max_steps):
        if step(rate):
            best_pass = rate
            rate = round(rate * args.factor, 2)
        else:
            first_fail = rate
            break
    if best_pass is not None and first_fail is not None:
        low, high = best_pass, first_fail
        for _ in range(args.refine):
            mid = round((low + high) / 2.0, 2)
            if mid <= low or mid >= high:
                break
            if step(mid):
                low = mid
            else:
                high = mid
        best_pass = low
    if args.overload > 0 and steps:
        # capacity: decisions/s while clearly overloaded (not a pass/fail step)
        top = max(s["offered_rate"] for s in steps)
        result = run_step(site, round(top * args.overload, 2), max(args.duration / 2, 2.0),
                          drain_s=args.drain_timeout, seed=99, label=f"{label} (overload)")
        result["overload"] = True
        steps.append(result)
        print_step(result)
    capacity = max((s["throughput"] for s in steps), default=0.0)
    return steps, best_pass, capacity


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.{digits}f}")


def print_step(s: dict[str, Any]) -> None:
    lat = s["latency_ms"]
    mark = "" if "passed" not in s else ("  pass" if s["passed"] else "  FAIL")
    print(
        f"  rate {s['offered_rate']:>6.2f}/s x {s['duration_s']:.0f} s: {s['decisions']:>4}/"
        f"{s['uploads_sent']} decided, {s['throughput']:>6.2f}/s; latency ms p50 "
        f"{fmt(lat['p50'])} p90 {fmt(lat['p90'])} p99 {fmt(lat['p99'])} max {fmt(lat['max'])}; "
        f"lost {s['lost']} dup {s['duplicated']} wrong {s['unexpected_decisions']} "
        f"timeout {s.get('timeouts', 0)} "
        f"errors {s['upload_errors']}; batch {s['encoder_batches']['mean_size']:.1f}{mark}",
        flush=True,
    )


def print_cpu(s: dict[str, Any]) -> None:
    per = s.get("cpu_ms_per_upload") or {}
    if not per:
        return
    total = sum(per.values())
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
    print(f"  CPU ms per upload (step total {total:.1f}): {parts}")


def print_stages(s: dict[str, Any]) -> None:
    print(f"\n  where the time goes (ms, {s['decisions']} decisions at {s['offered_rate']:g}/s)")
    print(f"  {'stage':<12} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}")
    total = 0.0
    for name, values in s["stages_ms"].items():
        total += values["mean"] or 0.0
        print(f"  {name:<12} {fmt(values['p50'], 1):>8} {fmt(values['p90'], 1):>8} "
              f"{fmt(values['p99'], 1):>8} {fmt(values['mean'], 1):>8}")
    print(f"  {'sum of means':<12} {'':>8} {'':>8} {'':>8} {total:>8.1f}  "
          f"(mean latency {fmt(s['latency_ms']['mean'], 1)})")


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run in doc["runs"]:
        steps = sorted(run["steps"], key=lambda s: s["offered_rate"])
        if not steps:
            continue
        rates = [s["offered_rate"] for s in steps]
        p99 = [s["latency_ms"]["p99"] or float("nan") for s in steps]
        p50 = [s["latency_ms"]["p50"] or float("nan") for s in steps]
        line = ax1.plot(rates, p99, marker="o", label=f"{run['config']['name']} p99")[0]
        ax1.plot(rates, p50, marker=".", linestyle="--", color=line.get_color(),
                 label=f"{run['config']['name']} p50")
        ax2.plot(rates, [s["throughput"] for s in steps], marker="o", color=line.get_color(),
                 label=run["config"]["name"])
    limit = doc.get("p99_limit_ms", 1000.0)
    ax1.axhline(limit, color="grey", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.set_xlabel("offered uploads/s")
    ax1.set_ylabel("upload -> verified event (ms)")
    ax1.set_title("latency")
    ax1.legend(fontsize=7)
    top = max((s["offered_rate"] for r in doc["runs"] for s in r["steps"]), default=1.0)
    ax2.plot([0, top], [0, top], color="grey", linewidth=0.8, label="offered")
    ax2.set_xlabel("offered uploads/s")
    ax2.set_ylabel("decisions/s")
    ax2.set_title("throughput")
    ax2.legend(fontsize=7)
    fig.suptitle(f"facegate end to end: {doc['machine']['cpu_model']}, "
                 f"{doc['machine']['usable_cpus']} CPUs", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_scaling(spec: str, wait_ms: int, doors: int) -> list[RunConfig]:
    out = []
    for part in spec.split(","):
        enc, _, batch = part.strip().lower().partition("x")
        out.append(RunConfig(int(enc), int(batch), wait_ms, doors))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4.0, help="uploads/s over all doors")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per step")
    parser.add_argument("--doors", type=int, default=8)
    parser.add_argument("--encoders", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16, help="FACEGATE_BATCH_SIZE")
    parser.add_argument("--batch-wait-ms", type=int, default=15, help="FACEGATE_BATCH_WAIT_MS")
    parser.add_argument("--mix", default="0.7,0.15,0.15",
                        help="fractions of residents, unknown faces, no-face pictures")
    parser.add_argument("--camera-size", type=int, default=640,
                        help="longest side of the snapshots in px (0: the photos as they are)")
    parser.add_argument("--drain-timeout", type=float, default=30.0,
                        help="seconds after the last upload before a missing event is lost")
    parser.add_argument("--find-max", action="store_true", help="step the rate up")
    parser.add_argument("--scaling", metavar="SPEC",
                        help='find-max per "encoders x batch" config, e.g. "1x1,1x16,2x16"')
    parser.add_argument("--start-rate", type=float, default=4.0)
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after a failure")
    parser.add_argument("--p99-limit-ms", type=float, default=300.0,
                        help="a step passes when its p99 is at most this (the goal: 300 ms)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between steps")
    parser.add_argument("--overload", type=float, default=2.0,
                        help="after the ladder, one step (half as long) at this multiple of "
                        "the highest rate tried, for the capacity (0: none)")
    parser.add_argument("--smoke", action="store_true", help="seconds of load at a low rate")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    parser.add_argument("--state-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--plot", type=Path, help="PNG (default: beside --out for ladders)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.smoke:
        args.rate, args.duration, args.doors = 2.0, 3.0, 2
        args.drain_timeout = max(args.drain_timeout, 60.0)
    weights = [float(x) for x in args.mix.split(",")]
    if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
        parser.error("--mix takes three non-negative fractions")

    if args.scaling:
        configs = parse_scaling(args.scaling, args.batch_wait_ms, args.doors)
        mode = "scaling"
    else:
        configs = [RunConfig(args.encoders, args.batch_size, args.batch_wait_ms, args.doors)]
        mode = "smoke" if args.smoke else "find_max" if args.find_max else "fixed"

    enrol, snapshots = load_pictures(args.camera_size)
    # residents split over the two known pictures; the others as given
    pic_weights = [weights[0] / 2, weights[0] / 2, weights[1], weights[2]]
    facts = machine_facts()
    doc: dict[str, Any] = {
        "benchmark": "e2e_load",
        "mode": mode,
        "command": " ".join(["python", "bench/e2e_load.py", *(argv or sys.argv[1:])]),
        "machine": facts,
        "p99_limit_ms": args.p99_limit_ms,
        "camera_size": args.camera_size,
        "pictures": {p.name: {"kind": p.kind, "bytes": len(p.data)} for p in snapshots},
        "runs": [],
    }
    print(f"machine: {describe(facts)}")
    tmp = tempfile.TemporaryDirectory(prefix="facegate-bench-")
    try:
        for n, cfg in enumerate(configs):
            state = (args.state_dir or Path(tmp.name)) / f"stack-{n}"
            print(f"\n== {cfg.name}, {cfg.doors} doors: starting the stack ({state})", flush=True)
            t0 = time.monotonic()
            stack = start_stack(cfg, args.base_port, state)
            run: dict[str, Any] = {"config": {**asdict(cfg), "name": cfg.name}}
            try:
                site = open_site(stack, cfg.doors, snapshots, pic_weights, enrol)
                run["stack_start_s"] = round(time.monotonic() - t0, 1)
                try:
                    warm_up(site, cfg.batch_size, cfg.encoders)
                    if mode in ("fixed", "smoke"):
                        step = run_step(site, args.rate, args.duration,
                                        drain_s=args.drain_timeout, seed=7, label=mode)
                        print_step(step)
                        run["steps"] = [step]
                    else:
                        steps, best, capacity = ladder(site, args, cfg.name)
                        run["steps"] = steps
                        run["max_sustained_rate"] = best
                        run["capacity"] = capacity
                        # the pipeline kept up with every step: its capacity is higher
                        run["capacity_is_lower_bound"] = all(
                            s["throughput"] >= 0.95 * s["offered_rate"] for s in steps
                        )
                        print(f"  highest rate with p99 <= {args.p99_limit_ms:.0f} ms and "
                              f"nothing lost: {fmt(best, 2)}/s; capacity {capacity:.2f}/s")
                    single = mode in ("fixed", "smoke")
                    shown = [s for s in run["steps"] if s.get("passed", single)] or run["steps"]
                    best_step = max(shown, key=lambda s: s["offered_rate"])
                    print_stages(best_step)
                    print_cpu(best_step)
                finally:
                    site.close()
            except Exception as exc:
                run["error"] = f"{type(exc).__name__}: {exc}"
                print(f"run failed: {run['error']}", file=sys.stderr)
                for name in stack.process_names():
                    print(f"--- {name}:\n{stack.tail(name, 10)}", file=sys.stderr)
            finally:
                stack.down()
            doc["runs"].append(run)
    finally:
        tmp.cleanup()

    steps = [s for r in doc["runs"] for s in r.get("steps", [])]
    doc["lost"] = sum(s["lost"] for s in steps)
    doc["duplicated"] = sum(s["duplicated"] for s in steps)
    doc["unexpected_decisions"] = sum(s["unexpected_decisions"] for s in steps)
    if len(doc["runs"]) > 1 or mode == "scaling":
        print("\nscaling (sustained: highest rate with p99 under the limit, nothing lost)")
        print(f"  {'configuration':<36} {'sustained/s':>11} {'capacity/s':>10}")
        for r in doc["runs"]:
            bound = " (lower bound)" if r.get("capacity_is_lower_bound") else ""
            print(f"  {r['config']['name']:<36} {fmt(r.get('max_sustained_rate'), 2):>11} "
                  f"{fmt(r.get('capacity'), 2):>10}{bound}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    if mode in ("find_max", "scaling") or args.plot:
        png = args.plot or args.out.with_suffix(".png")
        plot(doc, png)
        print(f"wrote {png}")
    failed = any("error" in r for r in doc["runs"])
    if doc["lost"] and mode in ("fixed", "smoke"):
        failed = True
    return 1 if failed or doc["duplicated"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
