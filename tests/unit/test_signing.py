"""Door-event signing and the lock-side check, with a fixed clock (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import (
    EventRejected,
    ReplayGuard,
    canonical_json,
    derive_door_key,
    sign_event,
    verify_event,
)

pytestmark = pytest.mark.unit

SECRET = "d4F9s8A7g6H5j4K3l2Z1x0Cv"
NOW = 1_800_000_000.0
KEY = derive_door_key(SECRET, "front")


def event(n: int = 0, **over: object) -> DoorEvent:
    fields: dict[str, object] = {
        "id": f"{n:032x}",
        "upload_id": "0123456789abcdef0123456789abcdef",
        "door": "front",
        "camera": "cam-1",
        "decision": Decision.OPEN,
        "reason": Reason.GRANTED,
        "person": "alice",
        "distance": 0.3125,
        "issued_at": NOW - 1.0,
        "expires_at": NOW + 29.0,
        "stamps": {"uploaded": NOW - 1.2},
    }
    fields.update(over)
    return DoorEvent(**fields)  # type: ignore[arg-type]


def reject_reason(wire: bytes | str, **kw: object) -> str:
    with pytest.raises(EventRejected) as info:
        verify_event(wire, KEY, "front", now=NOW, **kw)  # type: ignore[arg-type]
    return info.value.reason


def test_key_derivation_is_hmac_of_door_name() -> None:
    expected = hmac.new(SECRET.encode(), b"door:front", hashlib.sha256).digest()
    assert expected == KEY
    assert derive_door_key(SECRET, "back") != KEY
    assert derive_door_key(SECRET + "x", "front") != KEY


def test_wire_format() -> None:
    ev = event()
    wire = json.loads(sign_event(ev, KEY))
    assert set(wire) == {"event", "sig"}
    mac = hmac.new(KEY, canonical_json(ev.to_dict()), hashlib.sha256).hexdigest()
    assert wire["sig"] == mac
    assert canonical_json({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_valid_event_verifies() -> None:
    ev = event()
    got = verify_event(sign_event(ev, KEY), KEY, "front", now=NOW)
    assert got == ev
    assert got.granted
    # the key may be given as the hex text the CLI prints
    assert verify_event(sign_event(ev, KEY.hex()), KEY.hex(), "front", now=NOW) == ev


def test_deny_event_verifies() -> None:
    ev = event(decision=Decision.DENY, reason=Reason.BELOW_THRESHOLD)
    assert not verify_event(sign_event(ev, KEY), KEY, "front", now=NOW).granted


def test_forged_with_another_key() -> None:
    wire = sign_event(event(), derive_door_key("another-secret-entirely!", "front"))
    assert reject_reason(wire) == "tampered"


@pytest.mark.parametrize("sig", ["", "00" * 31, "zz" * 32, None, 12, "AB" * 32])
def test_forged_signature_form(sig: object) -> None:
    wire = json.loads(sign_event(event(), KEY))
    wire["sig"] = sig
    assert reject_reason(json.dumps(wire)) == "forged"


def test_event_for_another_door_is_forged() -> None:
    back_key = derive_door_key(SECRET, "back")
    wire = sign_event(event(door="back"), back_key)
    assert reject_reason(wire) == "forged"
    # and a lock of door "back" accepts it
    assert verify_event(wire, back_key, "back", now=NOW).door == "back"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("person", "mallory"),
        ("decision", "DENY"),
        ("expires_at", NOW + 3600.0),
        ("distance", 0.3124),
        ("stamps", {}),
    ],
)
def test_tampered_content(field: str, value: object) -> None:
    wire = json.loads(sign_event(event(), KEY))
    wire["event"][field] = value
    assert reject_reason(json.dumps(wire)) == "tampered"


def test_tampered_door_field_is_refused() -> None:
    wire = json.loads(sign_event(event(), KEY))
    wire["event"]["door"] = "back"
    assert reject_reason(json.dumps(wire)) == "forged"


def test_expired() -> None:
    wire = sign_event(event(), KEY)
    with pytest.raises(EventRejected) as info:
        verify_event(wire, KEY, "front", now=NOW + 29.001)
    assert info.value.reason == "expired"
    assert verify_event(wire, KEY, "front", now=NOW + 29.0).granted


def test_issued_in_the_future_is_refused() -> None:
    wire = sign_event(event(issued_at=NOW + 60.0, expires_at=NOW + 90.0), KEY)
    assert reject_reason(wire) == "expired"


def test_replayed() -> None:
    guard = ReplayGuard()
    wire = sign_event(event(), KEY)
    assert verify_event(wire, KEY, "front", now=NOW, guard=guard).granted
    assert reject_reason(wire, guard=guard) == "replayed"
    # another event passes
    assert verify_event(sign_event(event(1), KEY), KEY, "front", now=NOW, guard=guard)


def test_rejected_events_are_not_remembered() -> None:
    guard = ReplayGuard()
    wire = json.loads(sign_event(event(), KEY))
    wire["event"]["person"] = "mallory"
    assert reject_reason(json.dumps(wire), guard=guard) == "tampered"
    assert len(guard) == 0


@pytest.mark.parametrize(
    "wire",
    [b"", b"not json", b"[]", b'{"event": 1, "sig": "00"}', b'{"event": {}}', b"\xff" * 10],
)
def test_malformed(wire: bytes) -> None:
    assert reject_reason(wire) == "malformed"


def test_signed_but_invalid_fields_are_malformed() -> None:
    body = event().to_dict()
    body["reason"] = "because"
    wire = canonical_json(
        {"event": body, "sig": hmac.new(KEY, canonical_json(body), "sha256").hexdigest()}
    )
    assert reject_reason(wire) == "malformed"


def test_oversized_wire_is_malformed() -> None:
    assert reject_reason(b" " * 20_000) == "malformed"


def test_replay_guard_forgets_expired_ids_and_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    for n in range(3):
        guard.check_and_remember(f"{n:032x}", NOW + 10.0, NOW)
    assert len(guard) == 3
    with pytest.raises(EventRejected, match="full"):
        guard.check_and_remember(f"{9:032x}", NOW + 10.0, NOW)
    # once they expired, memory is released and new ids are accepted
    guard.check_and_remember(f"{9:032x}", NOW + 30.0, NOW + 11.0)
    assert len(guard) == 1
    assert f"{0:032x}" not in guard


def test_event_rejected_reason_is_checked() -> None:
    with pytest.raises(ValueError):
        EventRejected("weird")
