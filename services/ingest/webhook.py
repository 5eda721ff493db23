"""Object-store event bodies -> :class:`ObjectCreated` records (pure).

Two body shapes reach ``POST /v1/events`` (docs/DESIGN.md):

- MinIO (``FACEGATE_NOTIFICATIONS=minio``)::

    {"EventName": "s3:ObjectCreated:Put", "Key": "<bucket>/<key>",
     "Records": [{"eventName": "s3:ObjectCreated:Put",
                  "eventTime": "2026-12-01T16:50:31.082Z",
                  "s3": {"bucket": {"name": "<bucket>"},
                         "object": {"key": "<URL-encoded key>", "size": 123,
                                    "eTag": "<md5 hex>"}}}]}

  Object keys are query-escaped (``%2F``, ``+`` for a space) and decoded here.
  ``eventTime`` (RFC 3339, milliseconds) is when MinIO wrote the object.
- SeaweedFS filer webhook (``FACEGATE_NOTIFICATIONS=seaweedfs``), as
  ``weed mini`` 4.48 sends it (captured from a real server)::

    {"event_type": "create", "key": "/buckets/<bucket>/<key>",
     "message": {"new_entry": {"name": ..., "is_directory": false,
                               "chunks": [{"size": 5, "modified_ts_ns": 1796143831082015050,
                                           ...}],
                               "attributes": {"file_size": 123, "md5": "<base64>",
                                              "mtime": 1796143831, "crtime": 1796143831,
                                              ...}},
                 "new_parent_path": ..., ...}}

  Keys are plain paths. The filer also reports directories it creates
  (``uploads/``, ``uploads/<door>/``...), overwrites (``update``), deletes
  and renames; only file ``create`` events count. A file's ``mtime`` and
  ``crtime`` are whole seconds (truncated); its chunks carry the volume
  write time in nanoseconds (``modified_ts_ns``), directories an extra
  ``mtime_ns`` (the fraction of the second).

Every record carries ``written_at``: when the store wrote the object (unix
seconds), from the body itself: MinIO's ``eventTime``; SeaweedFS's earliest
chunk ``modified_ts_ns``, else ``mtime`` (+ ``mtime_ns``), else ``crtime``.
``None`` when the body has none that is plausible (ingest then asks the
store for the object's Last-Modified).

:func:`parse_events` returns every object creation in a body;
:func:`select` keeps those of one bucket under one key prefix. Anything that
is not one of the two shapes raises
:class:`~facegate.core.errors.BadMessageError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from facegate.core.errors import BadMessageError

SEAWEED_BUCKETS_DIR = "/buckets/"
MINIO_CREATED = "s3:ObjectCreated:"
MAX_RECORDS = 1000
PLAUSIBLE_TIMES = (946_684_800.0, 4_102_444_800.0)
"""A written-at outside 2000-01-01 .. 2100-01-01 is not believed (``None``)."""


@dataclass(frozen=True)
class ObjectCreated:
    """One object written to the store."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    written_at: float | None = None
    """When the store wrote the object (unix seconds), from the event body."""


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
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if 0 <= value <= 2**63 else None


def _plausible(value: float) -> float | None:
    low, high = PLAUSIBLE_TIMES
    return value if math.isfinite(value) and low <= value <= high else None


def _number(value: object) -> float | None:
    """A JSON number, or a decimal string (Go may send int64 as text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) < 2**63 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return float(int(value))
    return None


def _rfc3339(value: object) -> float | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a time without its zone cannot be placed
    return _plausible(moment.timestamp())


def _seaweed_written_at(entry: Mapping[str, Any], attrs: Mapping[str, Any]) -> float | None:
    chunks = entry.get("chunks")
    if isinstance(chunks, list):
        stamps = []
        for chunk in chunks[:MAX_RECORDS]:
            if isinstance(chunk, dict) and (ns := _number(chunk.get("modified_ts_ns"))):
                stamps.append(ns / 1e9)
        if stamps and (earliest := _plausible(min(stamps))) is not None:
            return earliest
    mtime = _number(attrs.get("mtime"))
    if mtime is not None:
        fraction = _number(attrs.get("mtime_ns"))
        if fraction is not None and 0 <= fraction < 1e9:
            mtime += fraction / 1e9
        if (found := _plausible(mtime)) is not None:
            return found
    crtime = _number(attrs.get("crtime"))
    return None if crtime is None else _plausible(crtime)


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
                written_at=_rfc3339(record.get("eventTime")),
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
            written_at=_seaweed_written_at(entry, attrs),
        )
    ]


def parse_events(body: bytes | str) -> list[ObjectCreated]:
    """Every object creation in a MinIO or SeaweedFS event body (may be empty)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
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
