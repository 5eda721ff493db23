"""Enrolments and revocations racing a stream of decisions, on real Redis
with two real matcher worker processes (one solo, one with two threads).

Rules checked for every decision (times from this process, which sends the
requests: a request sent after a write returned is read by a worker after
it was committed):

- a probe of a person whose revocation had returned before the request was
  sent is never matched to that person;
- a probe of a person whose enrolment had returned before the request was
  sent is matched to them when the decision was seen before their
  revocation started;
- each worker read the whole gallery once (its start), never again: every
  enrolment and revocation was applied incrementally.

Probes are exact templates (distance 0) at an identify door open to
everyone with a fixed threshold, so the only way to get a rule wrong is a
stale gallery. Redis databases 8 (data) and 9 (broker).
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import redis
from celery import Celery
from secrets_env import TEST_SECRETS

from facegate.adapters.celery_app import make_celery, send_match
from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.event_verify import ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, MatchRequest
from facegate.core.policy import EVERYONE, DoorMode, DoorPolicy
from facegate.core.signing import door_public_key
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "gallery-race-signing-secret-0123456789"
MODEL = "synthetic-128"
DOOR = "race-hall"
BASE_PEOPLE = 300
GUESTS = 25


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass
class Race:
    store: RedisStore
    celery: Celery
    logs: list[Path]
    enrolled: dict[str, float] = field(default_factory=dict)
    """Guest -> when their enrolment returned (monotonic)."""
    revoking: dict[str, float] = field(default_factory=dict)
    revoked: dict[str, float] = field(default_factory=dict)
    seen: list[tuple[str, float, float, DoorEvent]] = field(default_factory=list)
    """(whose probe, when sent, when its decision was seen, the event) of every decision."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, person: str, seed: int) -> DoorEvent:
        upload_id = keys.new_upload_id()
        self.store.put_probe(upload_id, unit(seed)[None], MODEL, ttl_s=300)
        sent = time.monotonic()
        send_match(self.celery, MatchRequest(
            upload_id=upload_id, door=DOOR, camera="cam-1", faces=1, model_id=MODEL,
            stamps={"uploaded": time.time()},
        ))
        end = sent + 30
        while (wire := self.store.get_decision(upload_id)) is None:
            if time.monotonic() > end:
                pytest.fail(f"no decision for {upload_id}:\n{self.tail()}")
            time.sleep(0.005)
        event = verify_event(
            wire, door_public_key(SECRET, DOOR), DOOR, now=time.time(), guard=ReplayGuard()
        )
        with self.lock:
            self.seen.append((person, sent, time.monotonic(), event))
        return event

    def tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in self.logs if p.exists())


def start(env: dict[str, str], tmp: Path, name: str, threads: int) -> subprocess.Popen[bytes]:
    ready = tmp / f"{name}.ready"
    log = tmp / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.matcher", "--ready-file", str(ready),
             "--hostname", f"{name}@%h"],
            cwd=ROOT, env={**env, "FACEGATE_WORKER_CONCURRENCY": str(threads)},
            stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"matcher {name} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


@pytest.fixture
def race(redis_url: str, tmp_path: Path) -> Iterator[Race]:
    data_url, broker_url = with_db(redis_url, 8), with_db(redis_url, 9)
    for url in (data_url, broker_url):
        redis.Redis.from_url(url).flushdb()
    env = {
        **os.environ,
        **TEST_SECRETS,
        "FACEGATE_ENV": "development",
        "FACEGATE_REDIS_URL": data_url,
        "FACEGATE_BROKER_URL": broker_url,
        "FACEGATE_SIGNING_SECRET": SECRET,
        "FACEGATE_DEADLINE_S": "30",
        "FACEGATE_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    client = redis.Redis.from_url(data_url)
    store = RedisStore(client)
    for i in range(BASE_PEOPLE):
        store.add_templates(f"resident{i}", unit(i)[None], MODEL)
    store.set_door(DoorPolicy(DOOR, DoorMode.IDENTIFY, frozenset({EVERYONE}), 0.5, 0.0))
    celery = make_celery(MatcherSettings.from_env(env), "gallery-race-client")
    procs = [start(env, tmp_path, "solo", 1), start(env, tmp_path, "threads", 2)]
    try:
        yield Race(store, celery, [tmp_path / "solo.log", tmp_path / "threads.log"])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        celery.close()
        client.close()


def test_enrolments_and_revocations_race_decisions(race: Race) -> None:
    for _ in range(8):  # both workers load the gallery before the race
        assert race.decide("resident1", 1).person == "resident1"
    stop = threading.Event()
    errors: list[BaseException] = []

    def decider(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                g = rng.randrange(GUESTS)
                race.decide(f"guest{g}", 10_000 + g)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=decider, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        for g in range(GUESTS):
            name = f"guest{g}"
            race.store.add_templates(name, unit(10_000 + g)[None], MODEL)
            race.enrolled[name] = time.monotonic()
            race.decide(name, 10_000 + g)
            time.sleep(0.05)
            race.revoking[name] = time.monotonic()
            race.store.remove_person(name)
            race.revoked[name] = time.monotonic()
            race.decide(name, 10_000 + g)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []

    checked_after_revoke = checked_enrolled = 0
    for person, sent, done, event in race.seen:
        if person not in race.enrolled:
            continue
        if sent > race.revoked.get(person, math.inf):
            assert event.person != person, f"{person} matched after revocation: {event}"
            assert event.decision is Decision.DENY
            checked_after_revoke += 1
        elif race.enrolled[person] < sent and done < race.revoking.get(person, math.inf):
            # decided wholly between the enrolment's commit and the revocation
            assert (event.decision, event.person) == (Decision.OPEN, person), event
            checked_enrolled += 1
    assert checked_after_revoke >= GUESTS and checked_enrolled >= GUESTS

    # each worker read every template once (at its first decision), then
    # applied every enrolment and revocation as a change
    for log in race.logs:
        text = log.read_text()
        assert text.count(f"gallery for {MODEL}:") == 1, text[-3000:]
        assert "full reload" not in text
        assert "applied" in text
