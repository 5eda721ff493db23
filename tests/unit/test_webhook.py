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


# --- written-at: when the store wrote the object -------------------------------------

CAPTURED_SEAWEED_CREATE = {
    # posted by `weed mini` 4.48 for an S3 PUT of 5 bytes (2026-12-01), trimmed of nothing
    "event_type": "create",
    "key": "/buckets/fgb/uploads/front/cam1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.jpg",
    "message": {
        "new_entry": {
            "name": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.jpg",
            "chunks": [
                {
                    "size": 5,
                    "modified_ts_ns": 1796143831082015050,
                    "e_tag": "XUFAKrxLKna5cZ2REBfFkg==",
                    "fid": {"volume_id": 1, "file_key": 1, "cookie": 2317190437},
                }
            ],
            "attributes": {
                "file_size": 5,
                "mtime": 1796143831,
                "file_mode": 432,
                "crtime": 1796143831,
                "mime": "image/jpeg",
                "md5": "XUFAKrxLKna5cZ2REBfFkg==",
                "inode": 9559435780705151571,
                "ctime": 1796143831,
                "atime": 1796143831,
            },
            "extended": {
                "Seaweed-X-Amz-ETag": "NWQ0MTQwMmFiYzRiMmE3NmI5NzE5ZDkxMTAxN2M1OTI=",
                "Seaweed-X-Amz-Owner": "Zmc=",
            },
        },
        "delete_chunks": True,
        "new_parent_path": "/buckets/fgb/uploads/front/cam1",
        "signatures": [966361833],
    },
}


def test_seaweed_written_at_comes_from_the_chunk_write_time() -> None:
    [event] = parse_events(json.dumps(CAPTURED_SEAWEED_CREATE))
    assert event.key == "uploads/front/cam1/" + "a" * 32 + ".jpg"
    assert event.written_at == pytest.approx(1796143831.082015, abs=1e-6)
    assert event.etag == hashlib.md5(b"hello").hexdigest()


def _variant(entry_changes: dict[str, Any], attr_changes: dict[str, Any]) -> float | None:
    body = json.loads(json.dumps(CAPTURED_SEAWEED_CREATE))
    entry = body["message"]["new_entry"]
    entry.update(entry_changes)
    entry["attributes"].update(attr_changes)
    for name, value in list(entry["attributes"].items()):
        if value is None:
            del entry["attributes"][name]
    [event] = parse_events(json.dumps(body))
    return event.written_at


def test_seaweed_written_at_fallbacks() -> None:
    two_chunks = [
        {"modified_ts_ns": 1796143832_000000000},
        {"modified_ts_ns": "1796143831500000000"},
    ]
    assert _variant({"chunks": two_chunks}, {}) == pytest.approx(1796143831.5)  # the earliest
    assert _variant({"chunks": []}, {}) == 1796143831.0  # whole-second mtime
    assert _variant({"chunks": []}, {"mtime_ns": 250_000_000}) == pytest.approx(1796143831.25)
    assert _variant({"chunks": []}, {"mtime": None, "crtime": 1796143830}) == 1796143830.0
    # implausible or malformed times are not believed: ingest asks the store instead
    assert _variant({"chunks": [{"modified_ts_ns": 5}]}, {"mtime": None, "crtime": None}) is None
    assert _variant({"chunks": "x"}, {"mtime": "soon", "crtime": 10**30}) is None
    assert _variant({"chunks": []}, {"mtime": True, "crtime": None}) is None


def test_minio_written_at_is_the_event_time() -> None:
    record = {**minio_record(), "eventTime": "2026-12-01T16:50:31.082Z"}
    [event] = parse_events(minio(record))
    assert event.written_at == pytest.approx(1796143831.082)
    for bad in ("yesterday", "2026-12-01T16:50:31", 1796143831, None, "1900-01-01T00:00:00Z"):
        [event] = parse_events(minio({**minio_record(), "eventTime": bad}))
        assert event.written_at is None, bad


def test_huge_numbers_do_not_escape_as_overflow() -> None:
    body = minio(minio_record()).replace(b'"size": 1234', b'"size": 1e999')
    [event] = parse_events(body)
    assert event.size is None
    body = minio(minio_record()).replace(b'"size": 1234', b'"size": ' + b"9" * 400)
    assert parse_events(body)[0].size is None
    with pytest.raises(BadMessageError):
        parse_events(b"[" * 100_000)
