"""The matcher as a real Celery worker process on a real Redis broker.

Probe encodings are written into Redis directly (synthetic vectors: the
matcher never runs the model); requests go through the broker with
``send_match``; events are checked the way a lock checks them.

The worker uses databases 4 (data) and 5 (broker) of the test Redis, and
this module never flushes them while the worker runs: every test uses its
own doors, people and upload ids.
"""

from __future__ import annotations

import json
import os
import statistics
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

from facegate.adapters.celery_app import MATCH_QUEUE, MATCH_TASK, make_celery, send_match
from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.event_verify import ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.signing import door_public_key
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "matcher-test-signing-secret-0123456789"
MODEL = "synthetic-128"


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@dataclass
class Matcher:
    settings: MatcherSettings
    store: RedisStore
    client: redis.Redis
    celery: Celery
    log: Path


@pytest.fixture(scope="module")
def matcher(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matcher]:
    data_url, broker_url = with_db(redis_url, 4), with_db(redis_url, 5)
    flush = redis.Redis.from_url(data_url)
    flush.flushdb()
    redis.Redis.from_url(broker_url).flushdb()
    env = {
        **os.environ,
        **TEST_SECRETS,
        "FACEGATE_ENV": "development",
        "FACEGATE_REDIS_URL": data_url,
        "FACEGATE_BROKER_URL": broker_url,
        "FACEGATE_SIGNING_SECRET": SECRET,
        "FACEGATE_THRESHOLD": "0.6",
        "FACEGATE_DEADLINE_S": "10",
        "FACEGATE_EVENT_TTL_S": "30",
        "FACEGATE_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    tmp = tmp_path_factory.mktemp("matcher")
    ready = tmp / "ready"
    log_path = tmp / "matcher.log"
    settings = MatcherSettings.from_env(env)
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.matcher", "--ready-file", str(ready)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"matcher worker did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        celery = make_celery(settings, "matcher-test-client")
        client = redis.Redis.from_url(data_url)
        yield Matcher(settings, RedisStore(client), client, celery, log_path)
        celery.close()
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        flush.close()


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(v: np.ndarray, d: float, seed: int = 99) -> np.ndarray:
    step = np.random.default_rng(seed).normal(size=v.shape)
    step -= step.dot(v) * v
    return (v + d * step / np.linalg.norm(step)).astype(np.float32)


def fresh(prefix: str) -> str:
    return f"{prefix}-{keys.new_upload_id()[:10]}"


def wait_event(m: Matcher, upload_id: str, door: str, timeout: float = 15.0) -> DoorEvent:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        wire = m.store.get_decision(upload_id)
        if wire is not None:
            key = door_public_key(SECRET, door)
            return verify_event(wire, key, door, now=time.time(), guard=ReplayGuard())
        time.sleep(0.01)
    pytest.fail(f"no decision for {upload_id} within {timeout} s:\n{m.log.read_text()[-3000:]}")


def submit(
    m: Matcher,
    door: str,
    probe: np.ndarray | None,
    *,
    badge: str | None = None,
    error: Reason | None = None,
    uploaded: float | None = None,
) -> str:
    upload_id = keys.new_upload_id()
    faces = 0
    if probe is not None:
        m.store.put_probe(upload_id, probe, MODEL, ttl_s=300, dim=128)
        faces = int(np.asarray(probe).reshape(-1, 128).shape[0])
    send_match(
        m.celery,
        MatchRequest(
            upload_id=upload_id,
            door=door,
            camera="cam-1",
            badge=badge,
            faces=faces,
            error=error,
            model_id=MODEL,
            stamps={"uploaded": time.time() if uploaded is None else uploaded},
        ),
    )
    return upload_id


@dataclass
class Site:
    """Three people enrolled (alice and bob allowed), a verify door and an
    identify door; every name is fresh, so tests do not see each other."""

    alice: str
    bob: str
    carol: str
    vec: dict[str, np.ndarray]
    verify_door: str
    identify_door: str


@pytest.fixture
def site(matcher: Matcher) -> Site:
    alice, bob, carol = fresh("alice"), fresh("bob"), fresh("carol")
    # fresh vectors too: people of earlier tests stay enrolled in the gallery
    base = int(keys.new_upload_id()[:8], 16)
    vecs = {alice: unit(base), bob: unit(base + 1), carol: unit(base + 2)}
    for name, v in vecs.items():
        matcher.store.add_templates(name, np.stack([v, near(v, 0.1, 5)]), MODEL)
    verify_door, identify_door = fresh("door-v"), fresh("door-i")
    matcher.store.set_door(DoorPolicy(verify_door, DoorMode.VERIFY, frozenset({alice, bob}), 0.6))
    matcher.store.set_door(
        DoorPolicy(identify_door, DoorMode.IDENTIFY, frozenset({alice, bob}), 0.6, 0.05)
    )
    return Site(alice, bob, carol, vecs, verify_door, identify_door)


def test_verify_granted_and_signed(matcher: Matcher, site: Site) -> None:
    alice = site.alice
    vec = site.vec[alice]
    door = site.verify_door
    uid = submit(matcher, door, near(vec, 0.3)[None], badge=alice)
    ev = wait_event(matcher, uid, door)
    assert (ev.decision, ev.reason, ev.person) == (Decision.OPEN, Reason.GRANTED, alice)
    assert ev.distance is not None and 0.25 < ev.distance < 0.35
    assert ev.expires_at - ev.issued_at == pytest.approx(30.0)
    assert {"uploaded", "match_start", "matched", "published"} <= set(ev.stamps)
    # another door's key does not verify it
    with pytest.raises(Exception, match="forged"):
        verify_event(matcher.store.get_decision(uid) or b"", door_public_key(SECRET, "x"), "x",
                     now=time.time())


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("below_threshold", Reason.BELOW_THRESHOLD),
        ("not_allowed", Reason.NOT_ALLOWED_HERE),
        ("unknown_badge", Reason.UNKNOWN_PERSON),
        ("no_badge", Reason.UNKNOWN_PERSON),
        ("no_face", Reason.NO_FACE),
        ("several", Reason.SEVERAL_FACES),
        ("bad_image", Reason.BAD_IMAGE),
        ("timeout", Reason.TIMEOUT),
        ("unknown_door", Reason.UNKNOWN_DOOR),
        ("unclaimed_identify", Reason.UNCLAIMED),
        ("unclaimed_stale", Reason.TIMEOUT),
        ("stranger", Reason.UNKNOWN_PERSON),
        ("identify_not_allowed", Reason.NOT_ALLOWED_HERE),
    ],
)
def test_denied_reasons(matcher: Matcher, site: Site, case: str, reason: Reason) -> None:
    alice, bob, carol = site.alice, site.bob, site.carol
    vecs = site.vec
    door, idoor = site.verify_door, site.identify_door
    a = vecs[alice][None]
    if case == "below_threshold":
        door, uid = door, submit(matcher, door, vecs[bob][None], badge=alice)
    elif case == "not_allowed":
        uid = submit(matcher, door, vecs[carol][None], badge=carol)
    elif case == "unknown_badge":
        uid = submit(matcher, door, a, badge="nobody-enrolled")
    elif case == "no_badge":
        uid = submit(matcher, door, a)
    elif case == "no_face":
        uid = submit(matcher, door, np.zeros((0, 128), np.float32), badge=alice)
    elif case == "several":
        uid = submit(matcher, door, np.stack([vecs[alice], vecs[bob]]), badge=alice)
    elif case == "bad_image":
        uid = submit(matcher, door, None, badge=alice, error=Reason.BAD_IMAGE)
    elif case == "timeout":
        uid = submit(matcher, door, a, badge=alice, uploaded=time.time() - 11)
    elif case == "unknown_door":
        door = fresh("nowhere")
        uid = submit(matcher, door, a, badge=alice)
    elif case == "unclaimed_identify":  # alice's own face, at a door she may pass
        door = idoor
        uid = submit(matcher, door, a, error=Reason.UNCLAIMED)
    elif case == "unclaimed_stale":
        door = idoor
        uid = submit(matcher, door, None, error=Reason.UNCLAIMED, uploaded=time.time() - 11)
    elif case == "stranger":
        door = idoor
        uid = submit(matcher, door, unit(1234)[None])
    else:
        door = idoor
        uid = submit(matcher, door, near(vecs[carol], 0.1)[None])
    ev = wait_event(matcher, uid, door)
    assert (ev.decision, ev.reason) == (Decision.DENY, reason)


def test_identify_granted(matcher: Matcher, site: Site) -> None:
    bob = site.bob
    door = site.identify_door
    uid = submit(matcher, door, near(site.vec[bob], 0.2)[None])
    ev = wait_event(matcher, uid, door)
    assert (ev.decision, ev.person) == (Decision.OPEN, bob)


def test_gallery_refresh_after_enrol_and_revoke(matcher: Matcher, site: Site) -> None:
    door = site.verify_door
    alice = site.alice
    dave = fresh("dave")
    matcher.store.set_door(DoorPolicy(door, DoorMode.VERIFY, frozenset({alice, dave}), 0.6))
    face = unit(int(keys.new_upload_id()[:8], 16))[None]
    uid = submit(matcher, door, face, badge=dave)
    assert wait_event(matcher, uid, door).reason is Reason.UNKNOWN_PERSON
    matcher.store.add_templates(dave, face, MODEL)
    uid = submit(matcher, door, face, badge=dave)
    assert wait_event(matcher, uid, door).granted
    matcher.store.remove_person(dave)
    uid = submit(matcher, door, face, badge=dave)
    assert wait_event(matcher, uid, door).reason is Reason.UNKNOWN_PERSON


def test_task_delivered_twice_gives_one_decision(matcher: Matcher, site: Site) -> None:
    alice = site.alice
    door = site.verify_door
    pubsub = matcher.client.pubsub()
    pubsub.subscribe(keys.door_channel(door))
    assert pubsub.get_message(timeout=2.0) is not None
    upload_id = keys.new_upload_id()
    matcher.store.put_probe(upload_id, site.vec[alice][None], MODEL, ttl_s=300)
    request = MatchRequest(
        upload_id=upload_id,
        door=door,
        camera="cam-1",
        badge=alice,
        faces=1,
        model_id=MODEL,
        stamps={"uploaded": time.time()},
    )
    send_match(matcher.celery, request)
    send_match(matcher.celery, request)
    first = wait_event(matcher, upload_id, door)
    assert first.granted
    time.sleep(1.0)  # let the second delivery run
    send_match(matcher.celery, request)  # and a redelivery after the decision
    time.sleep(1.0)
    messages = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        messages.append(msg)
    pubsub.close()
    assert len(messages) == 1
    assert len(matcher.store.read_log(door, count=100)) == 1
    audit = [w for _, w in matcher.store.read_log(None, count=10_000)]
    assert sum(json.loads(w)["event"]["upload_id"] == upload_id for w in audit) == 1
    assert matcher.store.get_decision(upload_id) == messages[0]["data"]


@pytest.mark.parametrize("corruption", ["probe", "door"])
def test_exception_inside_becomes_deny_internal_error(
    matcher: Matcher, site: Site, corruption: str
) -> None:
    alice = site.alice
    door = site.verify_door
    upload_id = keys.new_upload_id()
    matcher.store.put_probe(upload_id, site.vec[alice][None], MODEL, ttl_s=300)
    if corruption == "probe":
        matcher.client.hset(keys.probe_key(upload_id), "enc:0", b"garbage")
    else:
        door = fresh("broken-door")
        matcher.client.hset(keys.door_config_key(door), mapping={"mode": "open-sesame"})
        matcher.client.incr(keys.GALLERY_VERSION)
    send_match(
        matcher.celery,
        MatchRequest(
            upload_id=upload_id,
            door=door,
            camera="cam-1",
            badge=alice,
            faces=1,
            model_id=MODEL,
            stamps={"uploaded": time.time()},
        ),
    )
    ev = wait_event(matcher, upload_id, door)
    assert (ev.decision, ev.reason) == (Decision.DENY, Reason.INTERNAL_ERROR)


def test_worker_survives_bad_messages(matcher: Matcher, site: Site) -> None:
    door = site.verify_door
    alice = site.alice
    for junk in ["not json", json.dumps({"v": 99}), json.dumps([1, 2])]:
        matcher.celery.send_task(MATCH_TASK, args=[junk], queue=MATCH_QUEUE)
    # legible enough to name the upload: denied rather than lost
    salvage = keys.new_upload_id()
    matcher.celery.send_task(
        MATCH_TASK,
        args=[json.dumps({"v": 1, "upload_id": salvage, "door": door, "faces": "many"})],
        queue=MATCH_QUEUE,
    )
    assert wait_event(matcher, salvage, door).reason is Reason.INTERNAL_ERROR
    uid = submit(matcher, door, site.vec[alice][None], badge=alice)
    assert wait_event(matcher, uid, door).granted


def test_latency(matcher: Matcher, site: Site) -> None:
    """Enqueue -> signed event on the door's channel, one at a time (the
    figure for the report), and the matcher's own time from its stamps."""
    alice = site.alice
    door = site.verify_door
    vec = site.vec[alice][None]
    pubsub = matcher.client.pubsub()
    pubsub.subscribe(keys.door_channel(door))
    assert pubsub.get_message(timeout=2.0) is not None
    key = door_public_key(SECRET, door)
    total, inside = [], []
    for _ in range(50):
        t0 = time.perf_counter()
        uid = submit(matcher, door, vec, badge=alice)
        msg = pubsub.get_message(timeout=5.0)
        while msg is not None and msg["type"] != "message":
            msg = pubsub.get_message(timeout=5.0)
        total.append(time.perf_counter() - t0)
        assert msg is not None
        ev = verify_event(msg["data"], key, door, now=time.time())
        assert ev.upload_id == uid and ev.granted
        inside.append(ev.stamps["matched"] - ev.stamps["match_start"])
    pubsub.close()
    p50, p95 = statistics.median(total), sorted(total)[int(0.95 * len(total)) - 1]
    sys.stderr.write(
        f"matcher: enqueue->published p50 {p50 * 1e3:.1f} ms p95 {p95 * 1e3:.1f} ms; "
        f"decide p50 {statistics.median(inside) * 1e3:.2f} ms\n"
    )
    assert p50 < 0.5


def test_check_config() -> None:
    """``--check-config``: masked settings and exit 0, or the error and exit 1."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    base["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "services.matcher", "--check-config"]
    ok = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**base, **TEST_SECRETS, "FACEGATE_SIGNING_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "FACEGATE_THRESHOLD=0.6" in ok.stdout
    assert "FACEGATE_SIGNING_SECRET=****" in ok.stdout
    assert SECRET not in ok.stdout
    bad = subprocess.run(
        cmd,
        cwd=ROOT,
        env={
            **base,
            **TEST_SECRETS,
            "FACEGATE_ENV": "production",
            "FACEGATE_SIGNING_SECRET": "change-me",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "FACEGATE_SIGNING_SECRET" in bad.stderr
    assert "placeholder" in bad.stderr
    # no secret at all: refused in development too, naming each missing one
    none = subprocess.run(cmd, cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)
    assert none.returncode == 1
    for name in ("FACEGATE_SIGNING_SECRET", "FACEGATE_S3_SECRET_KEY"):
        assert f"{name}: must be set" in none.stderr
