"""Webhook body parsing (services/ingest/webhook.py): MinIO and SeaweedFS."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from facegate.core.errors import BadMessageError
from services.ingest.webhook import ObjectCreated, parse_events, select

pytestmark = pytest.mark.unit

BUCKET = "facegate-uploads"
KEY = "uploads/front/cam1/0123456789abcdef0123456789abcdef.jpg"


def minio(*records: dict[str, Any], event: str = "s3:ObjectCreated:Put") -> bytes:
    return json.dumps({"EventName": event, "Key": f"{BUCKET}/x", "Records": list(records)}).encode()


def minio_record(
    key: str = KEY, bucket: str = BUCKET, event: str = "s3:ObjectCreated:Put", size: int = 1234
) -> dict[str, Any]:
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "eventName": event,
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "eTag": "d41d8cd98f00b204e9800998ecf8427e"},
        },
    }


def seaweed(
    key: str = KEY,
    bucket: str = BUCKET,
    event_type: str = "create",
    directory: bool = False,
    data: bytes = b"jpeg",
) -> bytes:
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    entry: dict[str, Any] = {
        "name": key.rsplit("/", 1)[-1],
        "attributes": {"file_size": len(data), "mime": "image/jpeg", "md5": md5},
    }
    if directory:
        entry = {"name": key.rsplit("/", 1)[-1], "is_directory": True, "attributes": {}}
    message: dict[str, Any] = {"new_parent_path": f"/buckets/{bucket}"}
    if event_type in ("create", "update"):
        message["new_entry"] = entry
    if event_type in ("update", "delete"):
        message["old_entry"] = entry
    return json.dumps(
        {"event_type": event_type, "key": f"/buckets/{bucket}/{key}", "message": message}
    ).encode()


def test_minio_put() -> None:
    [event] = parse_events(minio(minio_record()))
    assert event == ObjectCreated(BUCKET, KEY, 1234, "d41d8cd98f00b204e9800998ecf8427e")


def test_minio_keys_are_url_decoded() -> None:
    encoded = "uploads%2Ffront%2Fcam%201%2Fa%2Bb+c.jpg"
    [event] = parse_events(minio(minio_record(key=encoded)))
    assert event.key == "uploads/front/cam 1/a+b c.jpg"


def test_minio_several_records_and_non_create_skipped() -> None:
    body = minio(
        minio_record(key="uploads/a/b/1.jpg"),
        minio_record(key="uploads/a/b/2.jpg", event="s3:ObjectRemoved:Delete"),
        minio_record(key="uploads/a/b/3.jpg", event="s3:ObjectCreated:CompleteMultipartUpload"),
        minio_record(key="uploads/a/b/4.jpg", event="s3:ObjectAccessed:Get"),
    )
    assert [e.key for e in parse_events(body)] == ["uploads/a/b/1.jpg", "uploads/a/b/3.jpg"]


def test_minio_removed_event_only() -> None:
    body = minio(minio_record(event="s3:ObjectRemoved:Delete"), event="s3:ObjectRemoved:Delete")
    assert parse_events(body) == []


def test_seaweed_create() -> None:
    [event] = parse_events(seaweed(data=b"jpeg"))
    assert event == ObjectCreated(BUCKET, KEY, 4, hashlib.md5(b"jpeg").hexdigest())


def test_seaweed_key_is_not_decoded() -> None:
    [event] = parse_events(seaweed(key="uploads/a/b/x%2Fy.jpg"))
    assert event.key == "uploads/a/b/x%2Fy.jpg"


@pytest.mark.parametrize("event_type", ["update", "delete", "rename"])
def test_seaweed_non_create_ignored(event_type: str) -> None:
    assert parse_events(seaweed(event_type=event_type)) == []


def test_seaweed_directories_and_non_bucket_paths_ignored() -> None:
    assert parse_events(seaweed(key="uploads/front", directory=True)) == []
    body = json.dumps(
        {"event_type": "create", "key": "/topics/x/y", "message": {"new_entry": {"name": "y"}}}
    )
    assert parse_events(body) == []
    body = json.dumps(
        {"event_type": "create", "key": "/buckets/onlybucket", "message": {"new_entry": {}}}
    )
    assert parse_events(body) == []


def test_seaweed_bad_md5_gives_no_etag() -> None:
    body = json.loads(seaweed())
    body["message"]["new_entry"]["attributes"]["md5"] = "not base64!"
    [event] = parse_events(json.dumps(body))
    assert event.etag is None and event.size == 4


def test_select_filters_bucket_and_prefix() -> None:
    events = [
        ObjectCreated(BUCKET, KEY),
        ObjectCreated("other-bucket", KEY),
        ObjectCreated(BUCKET, "enroll/alice/0123456789abcdef0123456789abcdef.jpg"),
        ObjectCreated(BUCKET, "uploadsX/front/cam/1.jpg"),
    ]
    assert select(events, BUCKET, "uploads/") == [ObjectCreated(BUCKET, KEY)]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b"{}",
        b'{"Records": "x"}',
        b'{"Records": [1]}',
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}',
        b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {}}}]}',
        b'{"Records": [{"s3": {}}]}',
        b'{"EventName": "s3:ObjectCreated:Put"}',
        b'{"event_type": "create"}',
        b'{"event_type": 5, "key": "/buckets/b/k"}',
        b'{"event_type": "create", "key": "/buckets/b/k", "message": []}',
        b'{"event_type": "create", "key": "/buckets/b/k", "message": {"new_entry": 3}}',
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(BadMessageError):
        parse_events(body)


def test_too_many_records() -> None:
    with pytest.raises(BadMessageError, match="records"):
        parse_events(minio(*[minio_record()] * 1001))
