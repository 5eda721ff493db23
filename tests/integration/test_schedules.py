"""Access groups and weekly schedules through a real matcher worker and real Redis.

The worker runs with ``FACEGATE_TIMEZONE=America/New_York`` (databases 8
and 9 of the test Redis). Windows are chosen relative to the current time
on that wall clock, so no test hook exists to move the matcher's clock: one
window around now (it opens), one three days away (it does not). Groups and
rules are set the way the CLI sets them (:class:`~facegate.clients.admin.Admin`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import redis
from celery import Celery
from secrets_env import TEST_SECRETS

from facegate.adapters.celery_app import make_celery, send_match
from facegate.adapters.redis_store import RedisStore
from facegate.clients.admin import Admin
from facegate.core import keys
from facegate.core.access import RuleKind
from facegate.core.event_verify import ReplayGuard, verify_event
from facegate.core.messages import Decision, DoorEvent, MatchRequest, Reason
from facegate.core.policy import DoorMode, DoorPolicy
from facegate.core.schedule import DAYS
from facegate.core.signing import door_public_key
from facegate.runtime.settings import CommonSettings
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "schedule-test-signing-secret-0123456789"
MODEL = "synthetic-128"
ZONE = "America/New_York"


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@dataclass
class Worker:
    store: RedisStore
    celery: Celery
    log: Path
    admin: Admin


@pytest.fixture(scope="module")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
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
        "FACEGATE_TIMEZONE": ZONE,
        "FACEGATE_DEADLINE_S": "10",
        "PYTHONPATH": str(ROOT),
    }
    tmp = tmp_path_factory.mktemp("schedules")
    ready, log_path = tmp / "ready", tmp / "matcher.log"
    settings = MatcherSettings.from_env(env)
    assert settings.zone == ZoneInfo(ZONE)
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.matcher", "--ready-file", str(ready)],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"matcher worker did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        celery = make_celery(settings, "schedule-test-client")
        client = redis.Redis.from_url(data_url)
        store = RedisStore(client)
        admin = Admin(CommonSettings.from_env(env), store, objects=None, send=lambda r: None)  # type: ignore[arg-type]
        yield Worker(store, celery, log_path, admin)
        celery.close()
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def fresh(prefix: str) -> str:
    return f"{prefix}-{keys.new_upload_id()[:10]}"


def decide(w: Worker, door: str, probe: np.ndarray, badge: str | None = None) -> DoorEvent:
    upload_id = keys.new_upload_id()
    w.store.put_probe(upload_id, probe[None, :], MODEL, ttl_s=300, dim=128)
    request = MatchRequest(upload_id=upload_id, door=door, camera="cam-1", badge=badge, faces=1,
                           model_id=MODEL, stamps={"uploaded": time.time()})  # fmt: skip
    send_match(w.celery, request)
    end = time.monotonic() + 15
    while time.monotonic() < end:
        wire = w.store.get_decision(upload_id)
        if wire is not None:
            key = door_public_key(SECRET, door)
            return verify_event(wire, key, door, now=time.time(), guard=ReplayGuard())
        time.sleep(0.01)
    pytest.fail(f"no decision for {upload_id}:\n{w.log.read_text()[-3000:]}")


def window_around_now(minutes: int = 90) -> str:
    """A window from ``minutes`` ago to ``minutes`` from now on the zone's
    wall clock (overnight when it crosses midnight)."""
    now = datetime.now(ZoneInfo(ZONE))
    start, end = now - timedelta(minutes=minutes), now + timedelta(minutes=minutes)
    return f"{DAYS[start.weekday()]} {start:%H:%M}-{end:%H:%M}"


def window_elsewhere() -> str:
    """A window three days from now: closed now, whatever the hour."""
    day = (datetime.now(ZoneInfo(ZONE)) + timedelta(days=3)).weekday()
    return f"{DAYS[day]} 10:00-11:00"


@pytest.mark.parametrize("mode", [DoorMode.VERIFY, DoorMode.IDENTIFY])
def test_a_group_member_opens_inside_the_window_and_is_denied_outside(
    worker: Worker, mode: DoorMode
) -> None:
    erin, mallory = fresh("erin"), fresh("mallory")
    base = int(keys.new_upload_id()[:8], 16)
    faces = {erin: unit(base), mallory: unit(base + 1)}
    for name, v in faces.items():
        worker.store.add_templates(name, v[None, :], MODEL)
    staff = fresh("staff")
    worker.store.add_group(staff)
    worker.store.add_member(staff, erin)
    open_door, closed_door = fresh("open"), fresh("closed")
    for door, schedule in ((open_door, window_around_now()), (closed_door, window_elsewhere())):
        worker.admin.set_door(DoorPolicy(door, mode, frozenset(), 0.6, 0.0))
        worker.admin.allow_rule(door, RuleKind.GROUP, staff, schedule)

    def at(door: str, person: str) -> tuple[Decision, Reason, str | None]:
        badge = person if mode is DoorMode.VERIFY else None
        event = decide(worker, door, faces[person], badge)
        return event.decision, event.reason, event.person

    assert at(open_door, erin) == (Decision.OPEN, Reason.GRANTED, erin)
    assert at(closed_door, erin) == (Decision.DENY, Reason.OUTSIDE_SCHEDULE, erin)
    assert at(open_door, mallory) == (Decision.DENY, Reason.NOT_ALLOWED_HERE, mallory)
    # leaving the group takes effect at once (the gallery version moves)
    worker.store.remove_member(staff, erin)
    assert at(open_door, erin) == (Decision.DENY, Reason.NOT_ALLOWED_HERE, erin)
    # a person rule with its own window, and revocation ends the membership
    worker.store.add_member(staff, erin)
    worker.admin.allow_rule(closed_door, RuleKind.PERSON, mallory, window_around_now())
    assert at(closed_door, mallory) == (Decision.OPEN, Reason.GRANTED, mallory)
    assert worker.store.groups_of(erin) == [staff]
    worker.store.remove_person(erin)
    assert worker.store.groups_of(erin) == [] and worker.store.group_members(staff) == []
