"""Object-store event bodies -> :class:`ObjectCreated` records (pure).

Two body shapes reach ``POST /v1/events`` (docs/DESIGN.md):

- MinIO (``FACEGATE_NOTIFICATIONS=minio``)::

    {"EventName": "s3:ObjectCreated:Put", "Key": "<bucket>/<key>",
     "Records": [{"eventName": "s3:ObjectCreated:Put",
                  "s3": {"bucket": {"name": "<bucket>"},
                         "object": {"key": "<URL-encoded key>", "size": 123,
                                    "eTag": "<md5 hex>"}}}]}

  Object keys are query-escaped (``%2F``, ``+`` for a space) and decoded here.
- SeaweedFS filer webhook (``FACEGATE_NOTIFICATIONS=seaweedfs``)::

    {"event_type": "create", "key": "/buckets/<bucket>/<key>",
     "message": {"new_entry": {"name": ..., "is_directory": false,
                               "attributes": {"file_size": 123, "md5": "<base64>"}}}}

  Keys are plain paths. The filer also reports directories it creates
  (``uploads/``, ``uploads/<door>/``...), overwrites (``update``), deletes
  and renames; only file ``create`` events count.

:func:`parse_events` returns every object creation in a body;
:func:`select` keeps those of one bucket under one key prefix. Anything that
is not one of the two shapes raises
:class:`~facegate.core.errors.BadMessageError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from facegate.core.errors import BadMessageError

SEAWEED_BUCKETS_DIR = "/buckets/"
MINIO_CREATED = "s3:ObjectCreated:"
MAX_RECORDS = 1000


@dataclass(frozen=True)
class ObjectCreated:
    """One object written to the store."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadMessageError(f"{what} must be a JSON object")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadMessageError(f"{what} must be a non-empty string")
    return value


def _size(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None


def _minio(body: Mapping[str, Any]) -> list[ObjectCreated]:
    records = body.get("Records")
    if not isinstance(records, list):
        raise BadMessageError("MinIO event without a Records list")
    if len(records) > MAX_RECORDS:
        raise BadMessageError(f"MinIO event with {len(records)} records (> {MAX_RECORDS})")
    top_name = body.get("EventName")
    out: list[ObjectCreated] = []
    for i, raw in enumerate(records):
        record = _obj(raw, f"Records[{i}]")
        name = record.get("eventName", top_name)
        if not isinstance(name, str):
            raise BadMessageError(f"Records[{i}] has no eventName")
        if not name.startswith(MINIO_CREATED):
            continue
        s3 = _obj(record.get("s3"), f"Records[{i}].s3")
        bucket = _str(_obj(s3.get("bucket"), f"Records[{i}].s3.bucket").get("name"), "bucket")
        obj = _obj(s3.get("object"), f"Records[{i}].s3.object")
        key = unquote_plus(_str(obj.get("key"), f"Records[{i}].s3.object.key"))
        etag = obj.get("eTag")
        out.append(
            ObjectCreated(
                bucket=bucket,
                key=key,
                size=_size(obj.get("size")),
                etag=etag.strip('"') if isinstance(etag, str) and etag else None,
            )
        )
    return out


def _seaweed_etag(attributes: Mapping[str, Any]) -> str | None:
    md5 = attributes.get("md5")
    if not isinstance(md5, str) or not md5:
        return None
    try:
        return base64.b64decode(md5, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def _seaweed(body: Mapping[str, Any]) -> list[ObjectCreated]:
    event_type = _str(body.get("event_type"), "event_type")
    path = _str(body.get("key"), "key")
    message = _obj(body.get("message", {}), "message")
    if event_type != "create":
        return []
    entry = message.get("new_entry")
    if entry is None:
        return []
    entry = _obj(entry, "message.new_entry")
    if entry.get("is_directory"):
        return []
    if not path.startswith(SEAWEED_BUCKETS_DIR):
        return []
    bucket, sep, key = path[len(SEAWEED_BUCKETS_DIR) :].partition("/")
    if not bucket or not sep or not key:
        return []
    attributes = entry.get("attributes")
    attrs: Mapping[str, Any] = attributes if isinstance(attributes, dict) else {}
    return [
        ObjectCreated(
            bucket=bucket,
            key=key,
            size=_size(attrs.get("file_size")),
            etag=_seaweed_etag(attrs),
        )
    ]


def parse_events(body: bytes | str) -> list[ObjectCreated]:
    """Every object creation in a MinIO or SeaweedFS event body (may be empty)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessageError(f"event body is not JSON: {exc}") from exc
    doc = _obj(data, "event body")
    if "Records" in doc or "EventName" in doc:
        return _minio(doc)
    if "event_type" in doc:
        return _seaweed(doc)
    raise BadMessageError("not a MinIO or SeaweedFS event (no Records, no event_type)")


def select(events: Iterable[ObjectCreated], bucket: str, prefix: str) -> list[ObjectCreated]:
    """The events of ``bucket`` whose key starts with ``prefix``."""
    return [e for e in events if e.bucket == bucket and e.key.startswith(prefix)]


__all__ = ["ObjectCreated", "parse_events", "select"]
