"""Approaches with real matcher worker processes on a real Redis broker:
one OPEN per approach, one DENY when the window closes (closed by the
worker's sweeper, no further frame needed), and an approach whose matcher
was killed is closed by the next matcher that starts.

Databases 6 (data) and 7 (broker) of the test Redis; synthetic encodings
(no model). Window: 4 s (the 2-core machine is shared: decisions may take
a second under load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
from facegate.core.event_verify import EventRejected, ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import DoorSigner
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "approach-test-signing-secret-0123456789"
MODEL = "synthetic-128"
WINDOW_S = 4.0


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass
class World:
    env: dict[str, str]
    store: RedisStore
    celery: Celery
    tmp: Path
    alice: np.ndarray

    def start_matcher(self, name: str) -> subprocess.Popen[bytes]:
        ready = self.tmp / f"{name}.ready"
        ready.unlink(missing_ok=True)
        with (self.tmp / f"{name}.log").open("a") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.matcher", "--ready-file", str(ready)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"matcher {name} did not start:\n{self.log(name)}")
            time.sleep(0.1)
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def frame(
        self, door: str, approach: str, probe: np.ndarray, written: float | None = None
    ) -> str:
        """Send one frame; ``written``: its written-at stamp (default now)."""
        upload_id = keys.new_upload_id()
        self.store.put_probe(upload_id, probe[None], MODEL, ttl_s=300)
        stamps = {"uploaded": time.time() if written is None else written}
        send_match(self.celery, MatchRequest(
            upload_id=upload_id, door=door, camera="cam-1", faces=1, model_id=MODEL,
            stamps=stamps, approach=approach,
        ))
        return upload_id

    def decided(self, upload_id: str, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while self.store.get_decision(upload_id) is None:
            if time.monotonic() > end:
                pytest.fail(f"no decision for {upload_id}:\n{self.log('a')}\n{self.log('b')}")
            time.sleep(0.02)

    def heard(self, door: str, approach: str) -> list[DoorEvent]:
        """The door's stream, as its lock checks it (the door's current
        key, each entry's id under the signature), for this approach."""
        key = DoorSigner.derive(SECRET, door, self.store.door_key_version(door)).public_key
        guard = ReplayGuard()
        events = []
        for sid, wire in self.store.events_since(door):
            try:
                events.append(
                    verify_event(wire, key, door, now=time.time(), guard=guard, stream_id=sid)
                )
            except EventRejected as exc:  # an earlier test's event may have expired
                if exc.reason != "expired":
                    raise
        return [e for e in events if e.approach == approach]


def stop(proc: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def world(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_url, broker_url = with_db(redis_url, 6), with_db(redis_url, 7)
    for url in (data_url, broker_url):
        redis.Redis.from_url(url).flushdb()
    env = {
        **os.environ,
        **TEST_SECRETS,
        "FACEGATE_ENV": "development",
        "FACEGATE_REDIS_URL": data_url,
        "FACEGATE_BROKER_URL": broker_url,
        "FACEGATE_SIGNING_SECRET": SECRET,
        "FACEGATE_APPROACH_WINDOW_S": str(WINDOW_S),
        "FACEGATE_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    settings = MatcherSettings.from_env(env)
    client = redis.Redis.from_url(data_url)
    store = RedisStore(client)
    alice = unit(1)
    store.add_templates("alice", alice[None], MODEL)
    store.set_door(DoorPolicy("atrium", DoorMode.IDENTIFY, frozenset({"*"}), 0.6, frames=3))
    celery = make_celery(settings, "approach-test-client")
    yield World(env, store, celery, tmp_path_factory.mktemp("approaches"), alice)
    celery.close()
    client.close()


@pytest.fixture
def matcher(world: World) -> Iterator[subprocess.Popen[bytes]]:
    proc = world.start_matcher("a")
    yield proc
    stop(proc)


@pytest.mark.usefixtures("matcher")
def test_one_open_per_approach(world: World) -> None:
    approach = keys.new_upload_id()
    ids = [world.frame("atrium", approach, v) for v in (unit(50), world.alice, world.alice)]
    for upload_id in ids:
        world.decided(upload_id)
    time.sleep(WINDOW_S + 1.0)  # nothing more may follow
    heard = world.heard("atrium", approach)
    assert [(e.decision, e.person) for e in heard] == [(Decision.OPEN, "alice")]
    assert heard[0].upload_id == ids[1]
    audited = [w for _, w in world.store.read_log(None, count=50) if approach.encode() in w]
    assert len(audited) == 3  # every frame in the audit log, once


@pytest.mark.usefixtures("matcher")
def test_the_window_closes_with_one_deny(world: World) -> None:
    approach = keys.new_upload_id()
    sent = time.time()
    ids = [world.frame("atrium", approach, unit(s)) for s in (60, 61)]
    for upload_id in ids:
        world.decided(upload_id)
    if time.time() < sent + WINDOW_S - 0.5:
        assert world.heard("atrium", approach) == []  # still open: the lock hears nothing
    end = time.monotonic() + WINDOW_S + 10
    while not world.heard("atrium", approach) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)
    (deny,) = world.heard("atrium", approach)
    assert (deny.decision, deny.reason) == (Decision.DENY, Reason.UNKNOWN_PERSON)
    assert deny.upload_id in ids


@pytest.mark.usefixtures("matcher")
def test_stale_frames_never_open_and_are_audited(world: World) -> None:
    """A resident's frames written past the deadline, or further ahead than
    the allowed clock skew: each DENY timeout in the audit log, the door
    hears only the approach's one DENY (timeout)."""
    approach = keys.new_upload_id()
    now = time.time()
    ids = [
        world.frame("atrium", approach, world.alice, written=now - 60.0),
        world.frame("atrium", approach, world.alice, written=now + 60.0),
    ]
    for upload_id in ids:
        world.decided(upload_id)
    end = time.monotonic() + WINDOW_S + 10
    while not world.heard("atrium", approach) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.5)
    (deny,) = world.heard("atrium", approach)
    assert (deny.decision, deny.reason) == (Decision.DENY, Reason.TIMEOUT)
    audited = [json.loads(w)["event"] for _, w in world.store.read_log(None, count=50)
               if approach.encode() in w]  # fmt: skip
    frames = [e for e in audited if e["upload_id"] in ids and e["stream_id"] is None]
    assert sorted(e["upload_id"] for e in frames) == sorted(ids)
    assert {(e["decision"], e["reason"]) for e in frames} == {("DENY", "timeout")}


def test_a_dead_matchers_approach_is_closed_by_the_next(world: World) -> None:
    first = world.start_matcher("a")
    approach = keys.new_upload_id()
    sent = time.time()
    try:
        upload_id = world.frame("atrium", approach, unit(70))
        world.decided(upload_id)
    finally:
        stop(first, kill=True)  # dies, here before its window closes
    if time.time() >= sent + WINDOW_S - 0.2:
        pytest.skip("the machine was too slow to kill the matcher inside the window")
    assert world.heard("atrium", approach) == []
    time.sleep(max(0.0, sent + WINDOW_S - time.time()))
    second = world.start_matcher("b")
    try:
        end = time.monotonic() + 10
        while not world.heard("atrium", approach) and time.monotonic() < end:
            time.sleep(0.05)
        (deny,) = world.heard("atrium", approach)
        assert deny.decision is Decision.DENY and deny.upload_id == upload_id
    finally:
        stop(second)
