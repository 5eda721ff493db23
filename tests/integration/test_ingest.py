"""Ingest over real HTTP, with real SeaweedFS (its filer webhook) and real Redis.

The ingest process comes from the ``ingest_url`` fixture; the encode tasks
it sends are read straight from the Celery broker db (the ``encode`` list
that the Redis transport keeps), no worker consumes them here.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from facegate.adapters.celery_app import ENCODE_QUEUE, ENCODE_TASK, MATCH_QUEUE, MATCH_TASK
from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind
from facegate.tools.devstack import Stack
from services.ingest.app import EnqueueUnavailableError, build
from services.ingest.http import make_server
from services.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + b"not really a jpeg, ingest never decodes" + b"\xff\xd9"


@dataclasses.dataclass
class Client:
    url: str
    settings: IngestSettings

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            err.close()
            return int(err.code), json.loads(raw)

    def presign(
        self, door: str = "front", camera: str = "cam1", badge: str | None = "alice"
    ) -> dict[str, Any]:
        status, doc = self.request(
            "POST",
            f"/v1/doors/{door}/presign",
            json.dumps({"camera": camera, "badge": badge}).encode(),
            token=self.settings.camera_token.get_secret_value(),
        )
        assert status == 200, doc
        return doc


@pytest.fixture
def client(ingest_url: str, ingest_settings: IngestSettings, doors: RedisStore) -> Client:
    return Client(ingest_url, ingest_settings)


@pytest.fixture
def broker(stack: Stack, services_redis: redis.Redis) -> Iterator[redis.Redis]:
    """The Celery broker db, emptied by ``services_redis`` before the test."""
    client = redis.Redis.from_url(stack.config.broker_url, socket_timeout=5.0)
    yield client
    client.close()


def _payloads(broker: redis.Redis, queue: str, task: str) -> list[str]:
    out: list[str] = []
    for raw in broker.lrange(queue, 0, -1):  # type: ignore[union-attr]
        envelope = json.loads(raw)
        assert envelope["headers"]["task"] == task
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert len(args) == 1 and isinstance(args[0], str)
        out.append(args[0])
    return out


def queued(broker: redis.Redis) -> list[EncodeRequest]:
    """The encode tasks waiting in the broker, decoded down to the message."""
    return [EncodeRequest.from_json(p) for p in _payloads(broker, ENCODE_QUEUE, ENCODE_TASK)]


def queued_denials(broker: redis.Redis) -> list[MatchRequest]:
    """The match tasks ingest sent itself (uploads denied before encoding)."""
    return [MatchRequest.from_json(p) for p in _payloads(broker, MATCH_QUEUE, MATCH_TASK)]


def wait_denied(broker: redis.Redis, count: int, timeout_s: float = 10.0) -> list[MatchRequest]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = queued_denials(broker)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def wait_queued(broker: redis.Redis, count: int, timeout_s: float = 10.0) -> list[EncodeRequest]:
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = queued(broker)
        if len(tasks) >= count or time.monotonic() > deadline:
            return tasks
        time.sleep(0.02)


def put(url: str, data: bytes) -> int:
    req = urllib.request.Request(url, data=data, method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        err.close()
        return int(err.code)


def seaweed_event(bucket: str, key: str) -> bytes:
    return json.dumps(
        {
            "event_type": "create",
            "key": f"/buckets/{bucket}/{key}",
            "message": {"new_entry": {"name": key.rsplit("/", 1)[-1], "attributes": {}}},
        }
    ).encode()


def minio_event(bucket: str, key: str) -> bytes:
    return json.dumps(
        {
            "EventName": "s3:ObjectCreated:Put",
            "Key": f"{bucket}/{key}",
            "Records": [
                {
                    "eventName": "s3:ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": bucket},
                        "object": {"key": key.replace("/", "%2F"), "size": 3},
                    },
                }
            ],
        }
    ).encode()


# --- the service answers ----------------------------------------------------------


def test_healthz(client: Client) -> None:
    assert client.request("GET", "/healthz") == (
        200,
        {"status": "ok", "bucket": client.settings.bucket},
    )


def test_tokens_are_checked(client: Client, broker: redis.Redis) -> None:
    body = seaweed_event(client.settings.bucket, keys.upload_object_key("front", "c", "a" * 32))
    assert client.request("POST", "/v1/events", body)[0] == 401
    assert client.request("POST", "/v1/events", body, token="wrong")[0] == 401
    # the camera token is not the webhook token, and the other way round
    camera_token = client.settings.camera_token.get_secret_value()
    assert client.request("POST", "/v1/events", body, token=camera_token)[0] == 401
    status, doc = client.request(
        "POST",
        "/v1/doors/front/presign",
        b'{"camera": "cam1"}',
        token=client.settings.webhook_token.get_secret_value(),
    )
    assert (status, doc["error"]) == (401, "unauthorized")
    status, _ = client.request(
        "POST", "/v1/doors/front/uploads?camera=cam1", JPEG, token="nope", content_type="image/jpeg"
    )
    assert status == 401
    assert queued(broker) == []


def test_errors_are_json_without_tracebacks(client: Client) -> None:
    token = client.settings.webhook_token.get_secret_value()
    status, doc = client.request("POST", "/v1/events", b"{not json", token=token)
    assert status == 400 and doc["error"] == "bad_request"
    assert "Traceback" not in json.dumps(doc)
    assert client.request("GET", "/nowhere")[0] == 404
    assert client.request("GET", "/v1/events")[0] == 405
    cam = client.settings.camera_token.get_secret_value()
    status, doc = client.request("POST", "/v1/doors/bad:door/presign", b'{"camera": "c"}', cam)
    assert status == 400 and "door" in doc["message"]
    status, doc = client.request("POST", "/v1/doors/front/presign", b'{"badge": "x"}', cam)
    assert status == 400 and "camera" in doc["message"]


def test_declared_body_over_the_limit_is_refused_unread(client: Client) -> None:
    parts = urlsplit(client.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/doors/front/uploads?camera=cam1")
        conn.putheader("Authorization", f"Bearer {client.settings.camera_token.get_secret_value()}")
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Content-Length", str(client.settings.max_upload_bytes + 1))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["error"] == "too_large"
    finally:
        conn.close()


# --- presigned URL -> SeaweedFS -> filer webhook -> encode task ----------------------------


def test_presigned_put_reaches_the_encode_queue(
    client: Client,
    broker: redis.Redis,
    services_redis: redis.Redis,
    object_store: MinioObjectStore,
) -> None:
    doc = client.presign("front", "cam1", "alice")
    assert doc["expires_in"] == client.settings.presign_expiry_s
    assert keys.parse_upload_key(doc["key"]) == ("front", "cam1", doc["upload_id"])
    claim = services_redis.hgetall(keys.claim_key(doc["upload_id"]))
    assert claim[b"badge"] == b"alice" and claim[b"key"] == doc["key"].encode()
    deadline_and_skew = 10 + 2  # FACEGATE_DEADLINE_S + FACEGATE_CLOCK_SKEW_S (defaults)
    claim_ttl = services_redis.ttl(keys.claim_key(doc["upload_id"]))
    assert doc["expires_in"] + deadline_and_skew < claim_ttl <= doc["expires_in"] + 72 + 1

    before = time.time()
    assert put(doc["url"], JPEG) == 200
    after = time.time()
    [task] = wait_queued(broker, 1)
    assert task.upload_id == doc["upload_id"]
    assert task.kind is UploadKind.ACCESS
    assert (task.bucket, task.key) == (client.settings.bucket, doc["key"])
    assert (task.door, task.camera, task.badge) == ("front", "cam1", "alice")
    # written-at: the object's own write time from SeaweedFS's event body
    # (the chunk's nanosecond stamp), inside the PUT, before ingest heard of it
    assert before <= task.stamps["uploaded"] <= after
    assert task.stamps["uploaded"] != int(task.stamps["uploaded"])  # not a whole-second mtime
    assert task.stamps["uploaded"] <= task.stamps["ingested"] <= time.time()
    assert object_store.get(doc["key"], max_bytes=1000) == JPEG
    # The filer's event was counted once; a redelivery of it is a duplicate.
    # Ingest marks the claim (then the pending mark) only after the send
    # returned (a send that failed must not look done), so wait for the marks:
    # a redelivery racing the first send may legitimately be sent again (the
    # matcher still decides once).
    claim_name = keys.claim_key(doc["upload_id"])
    deadline = time.monotonic() + 10
    while not services_redis.exists(keys.pending_key(doc["upload_id"])):
        assert time.monotonic() < deadline, "ingest never marked the upload pending"
        time.sleep(0.02)
    assert services_redis.hget(claim_name, "enqueued") is not None
    token = client.settings.webhook_token.get_secret_value()
    status, result = client.request(
        "POST", "/v1/events", seaweed_event(client.settings.bucket, doc["key"]), token=token
    )
    assert (status, result["enqueued"], result["duplicates"]) == (200, 0, 1)
    assert len(queued(broker)) == 1


def test_the_webhook_token_is_accepted_only_as_a_header(
    client: Client, broker: redis.Redis
) -> None:
    token = client.settings.webhook_token.get_secret_value()
    body = seaweed_event(client.settings.bucket, keys.upload_object_key("front", "c", "a" * 32))
    status, doc = client.request("POST", f"/v1/events?token={token}", body)
    assert (status, doc["error"]) == (401, "unauthorized")
    assert queued(broker) == [] and queued_denials(broker) == []


def test_unknown_doors_and_other_media_are_refused(
    client: Client, broker: redis.Redis, object_store: MinioObjectStore
) -> None:
    cam = client.settings.camera_token.get_secret_value()
    status, doc = client.request(
        "POST", "/v1/doors/no-such-door/presign", b'{"camera": "cam9"}', token=cam
    )
    assert (status, doc["error"]) == (404, "unknown_door")
    for body in (b'{"camera": "c", "ext": "gif"}', b'{"camera": "c", "ext": "html"}',
                 b'{"camera": "c", "ext": "png", "content_type": "image/jpeg"}'):  # fmt: skip
        status, doc = client.request("POST", "/v1/doors/front/presign", body, token=cam)
        assert (status, doc["error"]) == (415, "unsupported_media_type"), body
    status, doc = client.request(
        "POST", "/v1/doors/no-such-door/uploads?camera=c", JPEG, cam, content_type="image/jpeg"
    )
    assert (status, doc["error"]) == (404, "unknown_door")
    for content_type in ("text/html", "image/svg+xml", "application/octet-stream"):
        status, doc = client.request(
            "POST", "/v1/doors/front/uploads?camera=c", JPEG, cam, content_type=content_type
        )
        assert (status, doc["error"]) == (415, "unsupported_media_type"), content_type
    assert object_store.list_objects("uploads/no-such-door/") == []
    assert object_store.list_objects("uploads/front/c/") == []
    assert queued(broker) == []


def test_a_door_removed_after_the_url_was_issued_is_still_decided(
    client: Client, broker: redis.Redis, doors: RedisStore
) -> None:
    doc = client.presign("side", "cam9", "bob")
    doors.delete_door("side")  # the matcher will say unknown_door
    assert put(doc["url"], JPEG) == 200
    [task] = wait_queued(broker, 1)
    assert (task.door, task.badge) == ("side", "bob")


def test_presigned_url_writes_only_its_key(
    client: Client, broker: redis.Redis, object_store: MinioObjectStore
) -> None:
    doc = client.presign()
    parts = urlsplit(doc["url"])
    other_id = keys.new_upload_id()
    for path in (
        parts.path.replace(doc["upload_id"], other_id),
        parts.path.replace("/uploads/front/", "/uploads/vault/"),
        parts.path.rsplit("/", 1)[0] + "/",
        parts.path + "x",
    ):
        forged = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        assert put(forged, JPEG) == 403, path
    assert object_store.stat(doc["key"].replace(doc["upload_id"], other_id)) is None
    time.sleep(0.5)  # a webhook, were there one, arrives within milliseconds
    assert queued(broker) == []


def test_expired_url_is_refused(
    ingest_settings: IngestSettings, doors: RedisStore, object_store: MinioObjectStore
) -> None:
    app = build(ingest_settings.model_copy(update={"presign_expiry_s": 5}))
    try:
        doc = app.presign("front", "cam1", "alice", ingest_settings.camera_token.get_secret_value())
    finally:
        app.close()
    time.sleep(6.5)
    assert put(doc.url, JPEG) == 403
    assert object_store.stat(doc.key) is None


# --- direct upload ----------------------------------------------------------------------


def test_direct_upload_stores_and_enqueues_once(
    client: Client, broker: redis.Redis, object_store: MinioObjectStore
) -> None:
    status, doc = client.request(
        "POST",
        "/v1/doors/front/uploads?camera=cam2&badge=bob",
        JPEG,
        token=client.settings.camera_token.get_secret_value(),
        content_type="image/jpeg",
    )
    assert status == 201, doc
    assert keys.parse_upload_key(doc["key"]) == ("front", "cam2", doc["upload_id"])
    assert doc["key"].endswith(".jpg")
    assert object_store.get(doc["key"], max_bytes=1000) == JPEG
    [task] = wait_queued(broker, 1)
    assert (task.upload_id, task.badge, task.camera) == (doc["upload_id"], "bob", "cam2")
    # the filer's own webhook for this object arrives too and is dropped
    time.sleep(1.0)
    assert len(queued(broker)) == 1


def test_empty_direct_upload_is_refused(client: Client, broker: redis.Redis) -> None:
    status, doc = client.request(
        "POST",
        "/v1/doors/front/uploads?camera=cam2",
        b"",
        token=client.settings.camera_token.get_secret_value(),
        content_type="image/jpeg",
    )
    assert status == 400 and "empty" in doc["message"]
    assert queued(broker) == []


# --- webhook bodies ------------------------------------------------------------------


def test_events_for_other_buckets_and_prefixes_are_ignored(
    client: Client, broker: redis.Redis
) -> None:
    token = client.settings.webhook_token.get_secret_value()
    key = keys.upload_object_key("front", "cam1", keys.new_upload_id())
    for body in (
        seaweed_event("another-bucket", key),
        minio_event("another-bucket", key),
        seaweed_event(client.settings.bucket, "enroll/alice/" + "b" * 32 + ".jpg"),
        seaweed_event(client.settings.bucket, "uploads/front/not-an-upload-key.jpg"),
    ):
        status, result = client.request("POST", "/v1/events", body, token=token)
        assert (status, result["enqueued"], result["ignored"]) == (200, 0, 1), body
    assert queued(broker) == []


def test_minio_body_is_ingested_with_its_claim(
    client: Client, broker: redis.Redis, object_store: MinioObjectStore
) -> None:
    doc = client.presign("side", "cam3", "carol")
    # the object exists (MinIO would only notify after the write)
    object_store.put(doc["key"], JPEG, "image/jpeg")
    wait_queued(broker, 1)  # SeaweedFS's own webhook for that put
    broker.delete(ENCODE_QUEUE)
    status, result = client.request(
        "POST", "/v1/events", minio_event(client.settings.bucket, doc["key"]),
        token=client.settings.webhook_token.get_secret_value(),
    )  # fmt: skip
    # MinIO's redelivery of an object SeaweedFS already reported: a duplicate
    assert (status, result["enqueued"], result["duplicates"]) == (200, 0, 1)
    # a fresh object reported by MinIO alone: nobody claimed it
    key = keys.upload_object_key("side", "cam3", keys.new_upload_id())
    status, result = client.request(
        "POST", "/v1/events", minio_event(client.settings.bucket, key),
        token=client.settings.webhook_token.get_secret_value(),
    )  # fmt: skip
    assert (status, result["enqueued"]) == (200, 1)
    assert queued(broker) == []
    [denied] = queued_denials(broker)
    assert (denied.door, denied.error) == ("side", Reason.UNCLAIMED)


def test_an_object_written_with_s3_credentials_is_denied_unclaimed(
    client: Client, broker: redis.Redis, object_store: MinioObjectStore
) -> None:
    """Whoever holds S3 credentials can write an object; without a claim it
    can never open, not even an identify door: the matcher gets it as denied."""
    upload_id = keys.new_upload_id()
    key = keys.upload_object_key("lobby", "cam1", upload_id)
    before = time.time()
    object_store.put(key, JPEG, "image/jpeg")
    [denied] = wait_denied(broker, 1)
    assert (denied.upload_id, denied.door, denied.error) == (upload_id, "lobby", Reason.UNCLAIMED)
    assert before - 1 <= denied.stamps["uploaded"] <= denied.stamps["ingested"]
    assert queued(broker) == []  # never encoded


def test_broker_down_answers_503_and_loses_nothing(
    ingest_settings: IngestSettings, doors: RedisStore, broker: redis.Redis
) -> None:
    """When the task cannot be sent the webhook gets 503 (the store retries),
    and the retry, once the broker is back, is not taken for a duplicate."""
    dead = ingest_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/3"})
    app = build(dead)
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        doc = app.presign("front", "cam1", "alice", ingest_settings.camera_token.get_secret_value())
        body = seaweed_event(ingest_settings.bucket, doc.key)
        port = server.server_address[1]
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/events",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {ingest_settings.webhook_token.get_secret_value()}"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 503
        assert json.loads(info.value.read())["error"] == "unavailable"
        info.value.close()
        with pytest.raises(EnqueueUnavailableError):
            app.handle_event(body, ingest_settings.webhook_token.get_secret_value())
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.close()
    # the store retries against a working ingest: enqueued, not a duplicate
    good = build(ingest_settings)
    try:
        result = good.handle_event(body, ingest_settings.webhook_token.get_secret_value())
    finally:
        good.close()
    assert result.enqueued == [doc.upload_id]
    [task] = queued(broker)
    assert (task.upload_id, task.badge) == (doc.upload_id, "alice")


def test_bad_event_body_in_process(ingest_settings: IngestSettings) -> None:
    app = build(ingest_settings)
    try:
        with pytest.raises(BadMessageError):
            app.handle_event(b'{"Records": 1}', ingest_settings.webhook_token.get_secret_value())
    finally:
        app.close()
