"""Benchmark part: the matcher's gallery absorbing changes (``bench/identify.py --updates``).

For each size, on a Redis server of its own (no persistence) holding
``size`` synthetic templates (random 128-d unit vectors, 3 per person,
bulk-written straight into the person hashes), through the matcher's own
:class:`services.matcher.gallery_state.GalleryState` and
:class:`facegate.adapters.redis_store.RedisStore`:

- **full reload**: reading every template and building the gallery (what
  the matcher did on *every* enrolment, revocation and door change before
  the change stream; now only at start and on a gap);
- **apply one enrolment / revocation**: ``add_templates`` or
  ``remove_person`` (the real Lua scripts, change record included), then
  the time of ``GalleryState.refresh()``: the version GET, the change
  records, the person's hash, the in-place update (and that update alone:
  ``LiveGallery.put`` of one person's templates);
- **decision core while changes stream in**: ``refresh()`` + the door's
  calibrated threshold + the 1:K search, while a thread enrols and revokes
  at ``--change-rate`` changes/s, beside the same with no changes, and
  beside ``identify`` on the immutable ``Gallery`` of the same templates
  (the search of the table above, timed at the same moment).

Every enrolled probe must be found and every revoked person must never be
found (checked, counted in ``wrong``).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from facegate.adapters.redis_codec import FORMAT_VERSION
from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.matching import Gallery, identify
from facegate.core.policy import EVERYONE, DoorMode, DoorPolicy
from facegate.tools.devstack import find_redis_server
from services.matcher.gallery_state import GalleryState
from services.matcher.settings import MatcherSettings

MODEL = "synthetic-128"
DIM = 128
DOOR = "hall"
SECRET = "bench-gallery-updates-secret-0123456789"


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def start_redis(port: int, work: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def fill(client: redis.Redis, people: int, per_person: int, seed: int) -> None:
    """``people`` person hashes as ``add_templates`` writes them (bulk)."""
    rng = np.random.default_rng(seed)
    chunk = 2000
    for start in range(0, people, chunk):
        n = min(chunk, people - start)
        rows = unit_rows(rng, n * per_person)
        pipe = client.pipeline(transaction=False)
        names = [f"p{i:07d}" for i in range(start, start + n)]
        for j, name in enumerate(names):
            mapping: dict[str, bytes | str] = {
                "model": MODEL, "dim": str(DIM), "version": FORMAT_VERSION
            }
            for s in range(per_person):
                mapping[f"enc:{s:016d}"] = rows[j * per_person + s].tobytes()
            pipe.hset(keys.person_key(name), mapping=mapping)  # type: ignore[arg-type]
        pipe.sadd(keys.PEOPLE, *names)
        pipe.execute()


def ms(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1e3
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "max_ms": round(float(arr.max()), 3),
        "n": len(values),
    }


def decisions(
    state: GalleryState, probes: np.ndarray, seconds: float, min_count: int
) -> list[float]:
    """Decision core latencies: catch up, threshold, search."""
    out: list[float] = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds or len(out) < min_count:
        t0 = time.perf_counter()
        state.refresh()
        policy = state.door(DOOR)
        assert policy is not None
        live = state.gallery(MODEL, DIM)
        limit = state.threshold(policy, live, MODEL)
        live.identify(probes[i % len(probes)], limit, margin=policy.margin)
        out.append(time.perf_counter() - t0)
        i += 1
    return out


def bench_updates(
    size: int, *, per_person: int, changes: int, seconds: float, rate: float, port: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        proc = start_redis(port, Path(work))
        try:
            return _run(size, per_person, changes, seconds, rate, port)
        finally:
            proc.terminate()
            proc.wait(30)


def _run(
    size: int, per_person: int, changes: int, seconds: float, rate: float, port: int
) -> dict[str, Any]:
    client = redis.Redis(port=port, socket_timeout=120)
    people = max(1, size // per_person)
    t0 = time.perf_counter()
    fill(client, people, per_person, seed=size)
    fill_s = time.perf_counter() - t0
    store = RedisStore(client)
    store.set_door(DoorPolicy(DOOR, DoorMode.IDENTIFY, frozenset({EVERYONE}), None, 0.05))
    settings = MatcherSettings.from_env({
        "FACEGATE_SIGNING_SECRET": SECRET,  # nothing is signed or stored in S3 here
        "FACEGATE_S3_ACCESS_KEY": SECRET + "-s3-access",
        "FACEGATE_S3_SECRET_KEY": SECRET + "-s3-secret",
    })
    state = GalleryState(settings, store)

    t0 = time.perf_counter()
    state.refresh()
    gallery = state.gallery(MODEL, DIM)  # the first load: a full reload
    reload_s = [time.perf_counter() - t0]
    with state._apply_lock:
        t0 = time.perf_counter()
        state._reload()  # and once more, as on a gap
        reload_s.append(time.perf_counter() - t0)
    gallery = state.gallery(MODEL, DIM)
    assert gallery.template_count == people * per_person

    rng = np.random.default_rng(size + 1)
    wrong = 0
    enrol_s: list[float] = []
    revoke_s: list[float] = []
    for i in range(changes):
        rows = unit_rows(rng, per_person)
        store.add_templates(f"new{i}", rows, MODEL)
        t0 = time.perf_counter()
        state.refresh()
        enrol_s.append(time.perf_counter() - t0)
        found = gallery.identify(rows[0], 0.5)
        wrong += found.person != f"new{i}"
    for i in range(changes):
        store.remove_person(f"new{i}")
        t0 = time.perf_counter()
        state.refresh()
        revoke_s.append(time.perf_counter() - t0)
        wrong += f"new{i}" in gallery
    put_s: list[float] = []  # the in-memory part alone: LiveGallery.put of 3 templates
    for i in range(changes):
        rows = unit_rows(rng, per_person)
        t0 = time.perf_counter()
        gallery.put(f"direct{i}", rows)
        put_s.append(time.perf_counter() - t0)
    for i in range(changes):
        gallery.remove(f"direct{i}")

    probes = unit_rows(rng, 64)
    quiet = decisions(state, probes, seconds, 20)
    # the same search on the immutable Gallery of bench/identify.py's table (same moment)
    _, snapshot = store.templates_snapshot(MODEL)
    frozen = Gallery.from_mapping(snapshot)
    del snapshot
    immutable: list[float] = []
    for i in range(len(quiet)):
        t0 = time.perf_counter()
        identify(probes[i % len(probes)], frozen, 0.5, margin=0.05)
        immutable.append(time.perf_counter() - t0)
    del frozen
    stop = threading.Event()
    streamed = [0]

    def writer() -> None:
        wrng = np.random.default_rng(7)
        while not stop.is_set():
            name = f"stream{streamed[0]}"
            store.add_templates(name, unit_rows(wrng, per_person), MODEL)
            time.sleep(1.0 / rate / 2)
            store.remove_person(name)
            streamed[0] += 1
            time.sleep(1.0 / rate / 2)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    busy = decisions(state, probes, seconds, 20)
    stop.set()
    thread.join()
    state.refresh()
    wrong += any(n.startswith("stream") for n in gallery.people)
    return {
        "templates": people * per_person,
        "people": people,
        "templates_per_person": per_person,
        "fill_s": round(fill_s, 2),
        "reload_s": [round(s, 3) for s in reload_s],
        "gallery_mb": round(gallery.nbytes / 2**20, 1),
        "apply_enrolment": ms(enrol_s),
        "apply_revocation": ms(revoke_s),
        "put_in_memory": ms(put_s),
        "decision_quiet": ms(quiet),
        "immutable_identify": ms(immutable),
        "decision_while_changing": ms(busy),
        "changes_during_decisions": 2 * streamed[0],
        "change_rate_per_s": rate,
        "reloads_after_start": state.reloads - 2,  # the first load and the timed one
        "applied_changes": state.applied_changes,
        "wrong": int(wrong),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'templates':>10} {'reload s':>9} {'enrol p50':>10} {'p99 ms':>8} "
        f"{'revoke p50':>11} {'p99 ms':>8} {'decide p50':>11} {'p99':>8} "
        f"{'+changes p50':>13} {'p99':>8} {'immut p50':>10} {'put p50':>8} {'wrong':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['templates']:>10,} {statistics.median(r['reload_s']):>9.2f} "
            f"{r['apply_enrolment']['p50_ms']:>10.2f} {r['apply_enrolment']['p99_ms']:>8.2f} "
            f"{r['apply_revocation']['p50_ms']:>11.2f} {r['apply_revocation']['p99_ms']:>8.2f} "
            f"{r['decision_quiet']['p50_ms']:>11.2f} {r['decision_quiet']['p99_ms']:>8.2f} "
            f"{r['decision_while_changing']['p50_ms']:>13.2f} "
            f"{r['decision_while_changing']['p99_ms']:>8.2f} "
            f"{r['immutable_identify']['p50_ms']:>10.2f} "
            f"{r['put_in_memory']['p50_ms']:>8.3f} {r['wrong']:>6}"
        )
    return "\n".join(lines)
