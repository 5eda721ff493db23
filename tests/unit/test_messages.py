"""Messages: round trips, validation, schema version (pure)."""

from __future__ import annotations

import json

import pytest

from facegate.core.errors import BadMessageError, ImageError, NoFaceError, PermanentError
from facegate.core.messages import (
    SCHEMA_VERSION,
    Decision,
    DoorEvent,
    EncodeRequest,
    MatchRequest,
    Reason,
    UploadKind,
)

pytestmark = pytest.mark.unit

UID = "0123456789abcdef0123456789abcdef"
EID = "fedcba9876543210fedcba9876543210"


def match_request(**over: object) -> MatchRequest:
    fields: dict[str, object] = {
        "upload_id": UID,
        "door": "front",
        "camera": "cam-1",
        "badge": "alice",
        "faces": 1,
        "model_id": "dlib-resnet",
        "stamps": {"uploaded": 100.0, "ingested": 100.5},
    }
    fields.update(over)
    return MatchRequest(**fields)  # type: ignore[arg-type]


def door_event(**over: object) -> DoorEvent:
    fields: dict[str, object] = {
        "id": EID,
        "upload_id": UID,
        "door": "front",
        "camera": "cam-1",
        "decision": Decision.OPEN,
        "reason": Reason.GRANTED,
        "person": "alice",
        "distance": 0.31,
        "issued_at": 1000.0,
        "expires_at": 1030.0,
    }
    fields.update(over)
    return DoorEvent(**fields)  # type: ignore[arg-type]


def test_round_trips_every_message() -> None:
    enc = EncodeRequest(
        upload_id=UID,
        kind=UploadKind.ACCESS,
        bucket="facegate-uploads",
        key=f"uploads/front/cam-1/{UID}.jpg",
        door="front",
        camera="cam-1",
        stamps={"uploaded": 1.5},
    )
    assert EncodeRequest.from_json(enc.to_json()) == enc
    req = match_request(error=Reason.BAD_IMAGE, faces=0)
    back = MatchRequest.from_json(req.to_json())
    assert back == req
    assert back.error is Reason.BAD_IMAGE
    ev = door_event()
    assert DoorEvent.from_json(ev.to_json()) == ev
    assert DoorEvent.from_json(ev.to_json()).decision is Decision.OPEN


def test_json_is_plain_strings_and_versioned() -> None:
    data = json.loads(match_request().to_json())
    assert data["v"] == SCHEMA_VERSION == 1
    assert data["kind"] == "access"
    assert data["error"] is None
    assert data["stamps"] == {"uploaded": 100.0, "ingested": 100.5}


def test_enums_are_str_enums_with_design_values() -> None:
    assert [r.value for r in Reason] == [
        "granted",
        "no_face",
        "several_faces",
        "unknown_person",
        "below_threshold",
        "not_allowed_here",
        "bad_image",
        "unknown_door",
        "timeout",
        "internal_error",
        "unclaimed",
        "outside_schedule",
    ]
    assert Decision.DENY == "DENY"
    assert UploadKind("enroll") is UploadKind.ENROLL
    assert str(UploadKind.ENROLL) == "enroll"


def test_unknown_schema_version_refused() -> None:
    data = json.loads(match_request().to_json())
    data["v"] = 2
    with pytest.raises(BadMessageError, match="schema version"):
        MatchRequest.from_json(json.dumps(data))
    with pytest.raises(BadMessageError):
        match_request(v=2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("upload_id", "not-hex"),
        ("upload_id", UID.upper()),
        ("door", "a:b"),
        ("door", "../etc"),
        ("camera", ""),
        ("badge", "bad name"),
        ("faces", -1),
        ("faces", True),
        ("faces", 1.0),
        ("error", "melted"),
        ("error", "granted"),
        ("kind", "visit"),
        ("stamps", {"uploaded": "soon"}),
        ("stamps", [1, 2]),
        ("model_id", 7),
    ],
)
def test_invalid_fields_refused(field: str, value: object) -> None:
    data = json.loads(match_request().to_json())
    data[field] = value
    with pytest.raises(BadMessageError):
        MatchRequest.from_json(json.dumps(data))


def test_missing_and_unknown_fields_refused() -> None:
    data = json.loads(match_request().to_json())
    del data["upload_id"]
    with pytest.raises(BadMessageError, match="missing field 'upload_id'"):
        MatchRequest.from_json(json.dumps(data))
    data = json.loads(match_request().to_json())
    data["image"] = "AAAA"
    with pytest.raises(BadMessageError, match="unknown fields"):
        MatchRequest.from_json(json.dumps(data))


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b"\xff\xfe", b'"x"'])
def test_not_json_objects_refused(raw: bytes) -> None:
    with pytest.raises(BadMessageError):
        MatchRequest.from_json(raw)


def test_nan_is_neither_written_nor_read() -> None:
    with pytest.raises(BadMessageError):
        door_event(decision=Decision.DENY, reason=Reason.NO_FACE, distance=float("nan"))
    text = door_event().to_json().decode().replace("0.31", "NaN")
    with pytest.raises(BadMessageError):
        DoorEvent.from_json(text)


def test_door_event_consistency() -> None:
    with pytest.raises(BadMessageError, match="does not go with"):
        door_event(decision=Decision.OPEN, reason=Reason.NO_FACE)
    with pytest.raises(BadMessageError, match="does not go with"):
        door_event(decision=Decision.DENY, reason=Reason.GRANTED)
    with pytest.raises(BadMessageError, match="names the person"):
        door_event(person=None)
    with pytest.raises(BadMessageError, match="before"):
        door_event(expires_at=999.0)
    assert not door_event(decision=Decision.DENY, reason=Reason.TIMEOUT).granted


def test_access_and_enrol_requirements() -> None:
    with pytest.raises(BadMessageError, match="door and camera"):
        EncodeRequest(upload_id=UID, kind=UploadKind.ACCESS, bucket="b12", key="k", door="d")
    with pytest.raises(BadMessageError, match="person"):
        EncodeRequest(upload_id=UID, kind=UploadKind.ENROLL, bucket="b12", key="k")
    enrol = EncodeRequest(
        upload_id=UID, kind=UploadKind.ENROLL, bucket="b12", key="k", person="Barack_Obama"
    )
    assert EncodeRequest.from_json(enrol.to_json()).person == "Barack_Obama"


def test_with_stamp_returns_a_new_message() -> None:
    req = match_request()
    later = req.with_stamp("match_start", 101.25)
    assert later.stamps["match_start"] == 101.25
    assert "match_start" not in req.stamps
    assert later.upload_id == req.upload_id


def test_reason_from_error() -> None:
    assert Reason.from_error(ImageError("truncated")) is Reason.BAD_IMAGE
    assert Reason.from_error(NoFaceError()) is Reason.NO_FACE
    assert Reason.from_error(BadMessageError("x")) is Reason.INTERNAL_ERROR
    assert Reason.from_error(PermanentError()) is Reason.INTERNAL_ERROR
    assert Reason.from_error(RuntimeError("boom")) is Reason.INTERNAL_ERROR
