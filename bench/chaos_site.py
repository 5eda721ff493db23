"""The building ``bench/chaos.py`` runs faults against: its stack, doors,
residents, cameras and locks, and what is counted per scenario.

- Doors ``door00``.. (even: verify, odd: identify, letting every resident
  in); two residents enrolled through the encoder (the sample photos of
  ``bench/e2e_load.py``).
- Cameras: an open-loop schedule of presigned uploads at ``rate``/s, round
  robin over the doors: residents (expected OPEN), a stranger (DENY), a
  picture without a face (DENY no_face). Tickets are presigned ahead of
  the schedule (``LEAD_S``; a presigned URL lives 60 s), as a camera that
  keeps a few in hand would, so uploads go on while ingest is away. A PUT
  that fails is retried for ``PUT_RETRY_S`` (the object store may be
  down); one that never succeeds is counted as refused, not sent.
- An intruder: every ``UNCLAIMED_EVERY``-th upload is a resident's face
  written straight into the bucket with the stack's S3 credentials at an
  identify door: no claim, so it must be ``DENY unclaimed``.
- Locks: one real ``facegate subscribe`` process per door, holding only the
  door's public key, with its persistent state (``--state-dir``) and its
  fsync-ed log of accepted events (``--accepted-log``): what the door did.

Counted per scenario, over the uploads sent during it: decided (a decision
in the audit stream), lost (sent, never decided), duplicated (more than one
decision in the audit stream, or a lock that accepted more than one event
for it), stale OPEN (an OPEN issued more than ``FACEGATE_DEADLINE_S`` after
the PUT finished: the object was written before that, so it was older),
OPEN without a claim, missed at the lock (decided, never accepted by its
door's lock), and the times to recover.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_load import Picture, badge_for, expected, load_pictures

from facegate.tools.devstack import ROOT, Stack

LEAD_S = 40.0
PUT_RETRY_S = 20.0
UNCLAIMED_EVERY = 9
THRESHOLD = 0.6


@dataclass
class Upload:
    upload_id: str
    door: str
    kind: str
    """known / unknown / noface / unclaimed"""
    expect: tuple[str, str]
    claimed: bool
    due: float
    put_done: float = 0.0
    refused: str = ""


@dataclass
class Lock:
    door: str
    public_key: str
    state_dir: Path
    accepted: Path
    out: Path
    err: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0


@dataclass
class Building:
    stack: Stack
    env: dict[str, str]
    client: Any
    broker: Any
    camera: Any
    objects: Any
    doors: dict[str, str]
    locks: dict[str, Lock]
    pictures: list[Picture]
    weights: list[float]
    deadline_s: float
    uploads: dict[str, Upload] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """What a scenario's setup leaves for its fault and teardown."""

    # --- locks -----------------------------------------------------------------

    def start_lock(self, door: str, wait_s: float = 60.0) -> None:
        lock = self.locks[door]
        exe = str(Path(sys.executable).parent / "facegate")
        argv = [exe, "subscribe", "--door", door, "--key", lock.public_key,
                "--redis-url", self.env["FACEGATE_REDIS_URL"], "--state-dir",
                str(lock.state_dir), "--accepted-log", str(lock.accepted), "--json"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
        before = lock.err.read_text().count("subscribed to door") if lock.err.exists() else 0
        with lock.out.open("ab") as out, lock.err.open("ab") as err:
            lock.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        lock.starts += 1
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if lock.err.read_text().count("subscribed to door") > before:
                return
            if lock.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"lock {door} did not subscribe: {lock.err.read_text()[-2000:]}")

    def kill_lock(self, door: str) -> None:
        lock = self.locks[door]
        if lock.proc is not None and lock.proc.poll() is None:
            os.killpg(lock.proc.pid, 9)
            lock.proc.wait(10.0)
        lock.proc = None

    def stop_locks(self) -> None:
        for door in self.locks:
            self.kill_lock(door)

    def accepted(self) -> dict[str, list[dict[str, Any]]]:
        """upload id -> the events the locks accepted for it (all runs of each lock)."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for lock in self.locks.values():
            if not lock.accepted.exists():
                continue
            for line in lock.accepted.read_text().splitlines():
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue  # a line cut by kill -9 (the lock fsyncs whole lines)
                out[str(doc.get("upload_id"))].append(doc)
        return out

    def lock_rejections(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for lock in self.locks.values():
            if lock.out.exists():
                for line in lock.out.read_text().splitlines():
                    with_doc = _json(line)
                    if with_doc is not None and with_doc.get("verified") is False:
                        counts[str(with_doc.get("rejected"))] += 1
        return counts

    # --- decisions ---------------------------------------------------------------

    def audit(self, since_ms: int) -> dict[str, list[dict[str, Any]]]:
        """upload id -> its decisions in the audit stream since ``since_ms``."""
        from facegate.core import keys

        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        start = f"{since_ms}-0"
        while True:
            entries = self.client.xrange(keys.AUDIT_STREAM, min=start, count=1000)
            if not entries:
                return out
            for _sid, fields in entries:
                doc = _json(fields.get(b"event") or b"")
                if doc is not None and isinstance(doc.get("event"), dict):
                    event = doc["event"]
                    out[str(event.get("upload_id"))].append(event)
            last = entries[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))

    # --- cameras -------------------------------------------------------------------

    def plan(self, rate: float, seconds: float, seed: int) -> list[tuple[float, str, Picture]]:
        rng = random.Random(seed)
        doors = list(self.doors)
        out = []
        for i in range(max(1, round(rate * seconds))):
            picture = self.pictures[i] if i < len(self.pictures) else rng.choices(
                self.pictures, weights=self.weights)[0]
            out.append((i / rate, doors[i % len(doors)], picture))
        return out

    def run_load(self, rate: float, seed: int, keep_going: Callable[[float], bool]
                 ) -> list[Upload]:
        """Upload on schedule while ``keep_going(seconds since the start)``;
        returns every upload tried."""
        from concurrent.futures import ThreadPoolExecutor

        from facegate.core import keys

        schedule = self.plan(rate, 3600.0, seed)
        done = threading.Event()
        tickets: dict[int, Any] = {}
        got_ticket = threading.Condition()
        t0 = time.time() + 1.0
        results: list[Upload] = []
        lock = threading.Lock()

        def presigner() -> None:
            for i, (offset, door, picture) in enumerate(schedule):
                if i % UNCLAIMED_EVERY == UNCLAIMED_EVERY - 1:
                    continue
                while time.time() < t0 + offset - LEAD_S:
                    if done.is_set():
                        return
                    time.sleep(0.1)
                give_up = t0 + offset + 5.0
                while True:
                    try:
                        ticket = self.camera.presign(
                            door, "cam1", badge_for(picture, self.doors[door]), ext=picture.ext)
                        break
                    except Exception as exc:  # ingest away: a camera retries
                        if time.time() > give_up:
                            ticket = exc
                            break
                        time.sleep(0.5)
                with got_ticket:
                    tickets[i] = ticket
                    got_ticket.notify_all()

        def upload(i: int, due: float, door: str, picture: Picture) -> None:
            if i % UNCLAIMED_EVERY == UNCLAIMED_EVERY - 1:
                identify = [d for d, m in self.doors.items() if m == "identify"]
                door = identify[i % len(identify)]
                uid = keys.new_upload_id()
                item = Upload(uid, door, "unclaimed", ("DENY", "unclaimed"), False, due)
                key = keys.upload_object_key(door, "cam9", uid)
                face = self.pictures[0].data  # a resident, at a door that lets residents in
                item.refused = _retry(lambda: self.objects.put(key, face, "image/jpeg"))
            else:
                with got_ticket:
                    while i not in tickets:
                        got_ticket.wait(1.0)
                    ticket = tickets.pop(i)
                if isinstance(ticket, Exception):
                    with lock:
                        results.append(Upload(f"presign-failed-{i}", door, picture.kind,
                                              ("-", "-"), True, due, refused=str(ticket)))
                    return
                item = Upload(ticket.upload_id, door, picture.kind,
                              expected(picture, self.doors[door]), True, due)
                item.refused = _retry(lambda: self.camera.put(ticket, picture.data))
            item.put_done = time.time()
            with lock:
                results.append(item)

        threading.Thread(target=presigner, name="presigner", daemon=True).start()
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="camera") as pool:
            for i, (offset, door, picture) in enumerate(schedule):
                if not keep_going(offset):
                    break
                wait = t0 + offset - time.time()
                if wait > 0:
                    time.sleep(wait)
                pool.submit(upload, i, t0 + offset, door, picture)
            done.set()
        for item in results:
            self.uploads[item.upload_id] = item
        return results


def _retry(put: Any) -> str:
    """Run ``put`` until it succeeds or ``PUT_RETRY_S`` passed: '' or the last error."""
    give_up = time.time() + PUT_RETRY_S
    while True:
        try:
            put()
            return ""
        except Exception as exc:
            if time.time() > give_up:
                return f"{type(exc).__name__}: {exc}"[:200]
            time.sleep(0.5)


def _json(raw: bytes | str) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def open_building(stack: Stack, doors: int, mix: tuple[float, float, float],
                  state: Path) -> Building:
    import redis

    from facegate.adapters.celery_app import make_celery, send_encode
    from facegate.adapters.objectstore import MinioObjectStore
    from facegate.adapters.redis_store import RedisStore
    from facegate.clients.admin import Admin
    from facegate.clients.camera import CameraClient
    from facegate.core.policy import DoorMode, DoorPolicy
    from facegate.core.signing import DoorSigner
    from facegate.runtime.settings import CommonSettings

    env = stack.env()
    settings = CommonSettings.from_env(env)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=30.0)
    broker = redis.Redis.from_url(settings.broker_url, socket_timeout=30.0)
    store = RedisStore(client)
    objects = MinioObjectStore(settings)
    celery = make_celery(settings, "facegate-chaos")
    admin = Admin(settings, store, objects, lambda r: send_encode(celery, r))
    modes: dict[str, str] = {}
    for i in range(doors):
        door = f"door{i:02d}"
        mode = DoorMode.VERIFY if i % 2 == 0 else DoorMode.IDENTIFY
        allowed = frozenset() if mode is DoorMode.VERIFY else frozenset({"*"})
        admin.set_door(DoorPolicy(door, mode, allowed, THRESHOLD))
        modes[door] = mode.value
    enrol, snapshots = load_pictures(640)
    for person, photos in enrol.items():
        admin.enroll(person, photos, doors=list(modes), timeout_s=300.0)
    locks_dir = state / "locks"
    locks_dir.mkdir(parents=True, exist_ok=True)
    locks = {}
    for door in modes:
        key = DoorSigner.derive(settings.signing_secret.get_secret_value(), door,
                                store.door_key_version(door)).public_key.hex
        locks[door] = Lock(door, key, locks_dir / "state", locks_dir / f"{door}.accepted",
                           locks_dir / f"{door}.out", locks_dir / f"{door}.err")
    weights = [mix[0] / 2, mix[0] / 2, mix[1], mix[2]]
    building = Building(stack, env, client, broker,
                        CameraClient(stack.config.ingest_url, env["FACEGATE_CAMERA_TOKEN"],
                                     timeout_s=10.0),
                        objects, modes, locks, snapshots, weights, settings.deadline_s)
    for door in modes:
        building.start_lock(door)
    return building
