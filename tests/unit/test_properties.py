"""Property-based tests (hypothesis) of what reads untrusted input on the
ingest side: message decoding, object-key parsing, webhook bodies.

The documented contract, checked on arbitrary input: each parser returns a
value or raises :class:`~facegate.core.errors.BadMessageError`, nothing else
(no KeyError, TypeError, OverflowError, RecursionError...); what it accepts
is what the rest of the pipeline can use (keys that round-trip, ids that
validate, messages that re-encode to themselves).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.messages import (
    DoorEvent,
    EncodeRequest,
    MatchRequest,
    Reason,
    UploadKind,
    legible_ids,
)
from services.ingest.webhook import ObjectCreated, parse_events, select

pytestmark = pytest.mark.unit

PROPERTY = settings(
    max_examples=150,
    deadline=None,  # a loaded 2-core machine: time limits would be flaky, not informative
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow],
)

MESSAGES: tuple[type[Any], ...] = (EncodeRequest, MatchRequest, DoorEvent)

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)

upload_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
persons = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)
exts = st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True)
stamps = st.dictionaries(
    st.sampled_from(["uploaded", "ingested", "encode_start", "matched"]),
    st.floats(min_value=0, max_value=4e9),
    max_size=4,
)


def _documented(call: Any) -> Any:
    """Run ``call``; only BadMessageError may come out of it."""
    try:
        return call()
    except BadMessageError:
        return None


# --- messages --------------------------------------------------------------------------


@PROPERTY
@given(data=st.binary(max_size=400), cls=st.sampled_from(MESSAGES))
def test_message_from_arbitrary_bytes(data: bytes, cls: type[Any]) -> None:
    decoded = _documented(lambda: cls.from_json(data))
    if decoded is not None:
        assert cls.from_json(decoded.to_json()) == decoded


@PROPERTY
@given(doc=json_value, cls=st.sampled_from(MESSAGES))
def test_message_from_arbitrary_json(doc: Any, cls: type[Any]) -> None:
    text = json.dumps(doc)
    decoded = _documented(lambda: cls.from_json(text))
    if decoded is not None:
        assert cls.from_json(decoded.to_json()) == decoded


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid messages with some fields replaced by arbitrary values, some dropped,
    some unknown ones added: the shapes an attacker or a bug would send."""
    return st.fixed_dictionaries(
        {},
        optional={name: json_value for name in base},
    ).flatmap(
        lambda changes: st.sets(st.sampled_from(sorted(base)), max_size=3).map(
            lambda dropped: {
                **{k: v for k, v in base.items() if k not in dropped},
                **changes,
            }
        )
    )


BASE: dict[type[Any], dict[str, Any]] = {
    EncodeRequest: EncodeRequest(
        upload_id="a" * 32, kind=UploadKind.ACCESS, bucket="b", key="uploads/d/c/x.jpg",
        door="d", camera="c", badge="alice", stamps={"uploaded": 1.0},
    ).to_dict(),
    MatchRequest: MatchRequest.denied("b" * 32, "door", "cam", reason=Reason.UNCLAIMED,
                                      stamps={"uploaded": 2.0}).to_dict(),
    DoorEvent: json.loads(
        DoorEvent.from_dict({
            "v": 1, "id": "c" * 32, "upload_id": "d" * 32, "door": "front", "camera": None,
            "decision": "DENY", "reason": "unclaimed", "person": None, "distance": None,
            "issued_at": 10.0, "expires_at": 40.0, "stamps": {},
        }).to_json()
    ),
}


@PROPERTY
@given(data=st.data(), cls=st.sampled_from(MESSAGES))
def test_message_with_mutated_fields(data: st.DataObject, cls: type[Any]) -> None:
    doc = data.draw(_mutations(BASE[cls]))
    decoded = _documented(lambda: cls.from_json(json.dumps(doc)))
    if decoded is not None:
        assert decoded.to_dict() == cls.from_json(decoded.to_json()).to_dict()
        assert decoded.v == 1 and keys.check_upload_id(decoded.upload_id)


@PROPERTY
@given(payload=st.one_of(st.binary(max_size=200), st.text(max_size=200), json_value))
def test_legible_ids_never_raise(payload: Any) -> None:
    found = legible_ids(payload)
    if found is not None:
        upload_id, door, camera = found
        keys.check_upload_id(upload_id)
        keys.check_door(door)
        assert camera is None or keys.check_camera(camera) == camera


# --- object keys ------------------------------------------------------------------------


@PROPERTY
@given(key=st.one_of(st.text(max_size=200), st.binary(max_size=50), st.none(), st.integers()))
def test_upload_key_parsing_of_anything(key: Any) -> None:
    parsed = _documented(lambda: keys.parse_upload_key(key))
    if parsed is not None:
        door, camera, upload_id = parsed
        ext = key.rsplit(".", 1)[1]
        assert keys.upload_object_key(door, camera, upload_id, ext) == key
    enrol = _documented(lambda: keys.parse_enroll_key(key))
    if enrol is not None:
        person, upload_id = enrol
        assert keys.enroll_object_key(person, upload_id, key.rsplit(".", 1)[1]) == key


@PROPERTY
@given(door=names, camera=names, upload_id=upload_ids, ext=exts, junk=st.text(max_size=10))
def test_upload_keys_round_trip_and_tampering_is_refused(
    door: str, camera: str, upload_id: str, ext: str, junk: str
) -> None:
    key = keys.upload_object_key(door, camera, upload_id, ext)
    assert keys.parse_upload_key(key) == (door, camera, upload_id)
    for tampered in ("/" + key, key + "/" + junk, key.replace("uploads/", "uploads/../"),
                     f"uploads/{door}/{camera}/x/{upload_id}.{ext}"):  # fmt: skip
        with pytest.raises(BadMessageError):
            keys.parse_upload_key(tampered)


@PROPERTY
@given(value=st.one_of(st.text(max_size=80), st.none(), st.integers(), st.binary(max_size=10)))
def test_id_checks_of_anything(value: Any) -> None:
    for check in (keys.check_door, keys.check_camera, keys.check_person, keys.check_upload_id,
                  keys.check_ext):  # fmt: skip
        _documented(lambda c=check: c(value))  # type: ignore[misc]


@PROPERTY
@given(door=names, camera=names, upload_id=upload_ids, person=persons)
def test_redis_key_builders_accept_valid_ids(
    door: str, camera: str, upload_id: str, person: str
) -> None:
    for built in (keys.claim_key(upload_id), keys.pending_key(upload_id),
                  keys.decision_key(upload_id), keys.door_stream(door), keys.door_channel(door),
                  keys.person_key(person), keys.door_config_key(door)):  # fmt: skip
        assert built.startswith("facegate:") and " " not in built


# --- webhook bodies -----------------------------------------------------------------------


def _check_events(events: list[ObjectCreated]) -> None:
    for event in events:
        assert isinstance(event.bucket, str) and event.bucket
        assert isinstance(event.key, str) and event.key
        assert event.size is None or (isinstance(event.size, int) and event.size >= 0)
        assert event.written_at is None or 946_684_800.0 <= event.written_at <= 4_102_444_800.0
    select(events, "facegate-uploads", keys.UPLOADS_PREFIX)


@PROPERTY
@given(body=st.binary(max_size=600))
def test_webhook_body_of_arbitrary_bytes(body: bytes) -> None:
    events = _documented(lambda: parse_events(body))
    if events is not None:
        _check_events(events)


@PROPERTY
@given(doc=json_value)
def test_webhook_body_of_arbitrary_json(doc: Any) -> None:
    events = _documented(lambda: parse_events(json.dumps(doc)))
    if events is not None:
        _check_events(events)


edge_numbers = st.one_of(
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 2**64, 10**400, -1, 0, 1e308]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
)
"""Numbers that break naive code: infinities, NaN, integers past int64 and float."""

minio_record = st.fixed_dictionaries(
    {
        "eventName": st.one_of(st.just("s3:ObjectCreated:Put"), json_value),
        "s3": st.one_of(
            st.fixed_dictionaries(
                {
                    "bucket": st.one_of(
                        st.fixed_dictionaries({"name": st.text(min_size=1, max_size=20)}),
                        json_value,
                    ),
                    "object": st.fixed_dictionaries(
                        {"key": st.one_of(st.text(min_size=1, max_size=80), json_value)},
                        optional={
                            "size": st.one_of(edge_numbers, json_value),
                            "eTag": json_value,
                        },
                    ),
                }
            ),
            json_value,
        ),
    },
    optional={
        "eventTime": st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
            st.text(max_size=40),
            json_value,
        ),
    },
)

times = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.text(max_size=40),
    json_value,
)

well_formed_minio_record = st.fixed_dictionaries(
    {
        "eventName": st.just("s3:ObjectCreated:Put"),
        "eventTime": times,
        "s3": st.fixed_dictionaries(
            {
                "bucket": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=20)}),
                "object": st.fixed_dictionaries(
                    {
                        "key": st.text(min_size=1, max_size=80),
                        "size": st.one_of(edge_numbers, json_value),
                        "eTag": st.one_of(st.text(max_size=40), json_value),
                    }
                ),
            }
        ),
    }
)
"""Every field where it belongs, each leaf arbitrary: reaches the code behind the shape checks."""

seaweed_entry = st.fixed_dictionaries(
    {},
    optional={
        "name": json_value,
        "is_directory": st.one_of(st.booleans(), json_value),
        "chunks": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={"modified_ts_ns": st.one_of(
                        edge_numbers, st.text(max_size=25), json_value)},
                ),
                max_size=4,
            ),
            json_value,
        ),
        "attributes": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={k: st.one_of(edge_numbers, json_value)
                          for k in ("mtime", "mtime_ns", "crtime", "file_size", "md5")},
            ),
            json_value,
        ),
    },
)


@PROPERTY
@given(
    minio=st.fixed_dictionaries(
        {"Records": st.one_of(
            st.lists(st.one_of(well_formed_minio_record, minio_record, json_value), max_size=4),
            json_value)},
        optional={"EventName": json_value},
    ),
    seaweed=st.fixed_dictionaries(
        {"event_type": st.one_of(st.sampled_from(["create", "update", "delete"]), json_value)},
        optional={
            "key": st.one_of(
                st.text(max_size=60).map(lambda k: "/buckets/facegate-uploads/" + k), json_value
            ),
            "message": st.one_of(
                st.fixed_dictionaries({}, optional={"new_entry": st.one_of(seaweed_entry,
                                                                           json_value)}),
                json_value,
            ),
        },
    ),
)
def test_webhook_bodies_shaped_like_the_stores(minio: Any, seaweed: Any) -> None:
    for doc in (minio, seaweed):
        events = _documented(lambda d=doc: parse_events(json.dumps(d)))  # type: ignore[misc]
        if events is not None:
            _check_events(events)


@PROPERTY
@given(
    chunks=st.lists(st.fixed_dictionaries({"modified_ts_ns": st.one_of(
        edge_numbers, st.text(max_size=25), json_value)}), max_size=3),
    attributes=st.dictionaries(
        st.sampled_from(["mtime", "mtime_ns", "crtime", "file_size", "md5"]),
        st.one_of(edge_numbers, st.text(max_size=30), json_value),
    ),
)  # fmt: skip
def test_a_well_formed_seaweed_create_with_arbitrary_attributes(
    chunks: list[Any], attributes: dict[str, Any]
) -> None:
    body = {
        "event_type": "create",
        "key": "/buckets/facegate-uploads/uploads/front/cam1/" + "a" * 32 + ".jpg",
        "message": {"new_entry": {"name": "x", "chunks": chunks, "attributes": attributes}},
    }
    [event] = parse_events(json.dumps(body))
    _check_events([event])


@PROPERTY
@given(key=st.text(min_size=1, max_size=80), ns=st.integers(min_value=0, max_value=2**63 - 1))
def test_a_seaweed_create_is_found_whatever_its_key(key: str, ns: int) -> None:
    assume("/" not in key[:1])
    body = {
        "event_type": "create",
        "key": f"/buckets/facegate-uploads/{key}",
        "message": {"new_entry": {"name": "x", "chunks": [{"modified_ts_ns": ns}]}},
    }
    [event] = parse_events(json.dumps(body))
    assert (event.bucket, event.key) == ("facegate-uploads", key)
    plausible = 946_684_800.0 <= ns / 1e9 <= 4_102_444_800.0
    assert (event.written_at is not None) == plausible
