"""The reconciler on real SeaweedFS and real Redis: objects whose bucket
event never reached ingest are found, sent once through the normal path,
page by page, by one instance at a time.

Each test uses a bucket of its own, whose events SeaweedFS does not send
(the stack's webhook covers only ``<FACEGATE_BUCKET>/uploads/``): exactly a
webhook that gave up. The ingest app and its reconciler run in this process;
the tasks they send are read from the broker (no worker consumes them here).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from test_ingest import JPEG, queued, queued_denials

from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.messages import Reason
from services.ingest.app import IngestApp, build
from services.ingest.reconciler import Reconciler
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

GRACE_S = 4.0
"""Longer than the puts take on a loaded machine plus the whole second that
S3's Last-Modified may lose."""


@pytest.fixture
def app(
    ingest_settings: IngestSettings, doors: RedisStore, broker: redis.Redis
) -> Iterator[IngestApp]:
    bucket = f"facegate-rec-{keys.new_upload_id()[:12]}"
    settings = ingest_settings.model_copy(
        update={"bucket": bucket, "reconcile_grace_s": GRACE_S, "reconcile_batch": 3}
    )
    built = build(settings)
    assert isinstance(built.store, MinioObjectStore)
    built.store.ensure_bucket()
    try:
        yield built
    finally:
        built.store.delete_prefix("uploads/")
        built.close()


@pytest.fixture
def broker(stack: object, services_redis: redis.Redis) -> Iterator[redis.Redis]:
    from facegate.tools.devstack import Stack

    assert isinstance(stack, Stack)
    client = redis.Redis.from_url(stack.config.broker_url, socket_timeout=5.0)
    yield client
    client.close()


def put(url: str, data: bytes) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT"), timeout=10):
        pass


def test_lost_events_are_found_and_sent_once(app: IngestApp, broker: redis.Redis) -> None:
    cam = app.settings.camera_token.get_secret_value()
    tickets = [app.presign("front", "cam1", "alice", cam) for _ in range(4)]
    before = time.time()
    for ticket in tickets:
        put(ticket.url, JPEG)
    intruder = keys.upload_object_key("lobby", "cam1", keys.new_upload_id())
    app.store.put(intruder, JPEG, "image/jpeg")  # S3 credentials, no claim
    time.sleep(0.3)
    assert queued(broker) == [] and queued_denials(broker) == []  # no webhook came

    # too young: left to a webhook that may still come (a walk of two passes)
    early = [Reconciler(app, holder="a").run_pass() for _ in range(2)]
    assert [(p.listed, p.young, p.sent) for p in early] == [(3, 3, []), (2, 2, [])]
    time.sleep(GRACE_S + 1.0)  # Last-Modified has whole seconds

    passes = [Reconciler(app, holder="a").run_pass() for _ in range(2)]
    assert [p.listed for p in passes] == [3, 2]  # bounded: 3 keys a pass, then the rest
    sent = sorted(uid for p in passes for uid in p.sent)
    expected = sorted([t.upload_id for t in tickets] + [keys.parse_upload_key(intruder)[2]])
    assert sent == expected

    encodes = queued(broker)
    assert sorted(r.upload_id for r in encodes) == sorted(t.upload_id for t in tickets)
    for request in encodes:
        assert request.badge == "alice" and request.bucket == app.settings.bucket
        # the object's Last-Modified (whole seconds), not the time of the pass
        assert before - 1 <= request.stamps["uploaded"] <= before + 1
        assert request.stamps["ingested"] - request.stamps["uploaded"] >= GRACE_S
    [denied] = queued_denials(broker)
    assert (denied.door, denied.error) == ("lobby", Reason.UNCLAIMED)

    # the cursor went back to the start; nothing is sent twice
    again = [Reconciler(app, holder="a").run_pass() for _ in range(2)]
    assert [p.sent for p in again] == [[], []] and again[0].settled == 3
    assert len(queued(broker)) == 4 and len(queued_denials(broker)) == 1


def test_only_one_instance_runs_the_passes(app: IngestApp, broker: redis.Redis) -> None:
    one, two = Reconciler(app, holder="ingest-1"), Reconciler(app, holder="ingest-2")
    assert one.run_pass().ran is True
    assert two.run_pass().ran is False
    assert one.run_pass().ran is True  # renewed by its holder
    one.release()
    assert two.run_pass().ran is True
    two.release()
