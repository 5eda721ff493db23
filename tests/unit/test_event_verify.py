"""The lock-side check of door events (facegate.core.event_verify), with a fixed clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from facegate.core.event_verify import (
    DoorKeys,
    DoorPublicKey,
    EventRejected,
    ReplayGuard,
    canonical_json,
    key_id,
    signed_message,
    verify_event,
)
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner

pytestmark = pytest.mark.unit

SECRET = "d4F9s8A7g6H5j4K3l2Z1x0Cv"
NOW = 1_800_000_000.0
SIGNER = DoorSigner.derive(SECRET, "front")
PUBLIC = SIGNER.public_key


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
        "stream_id": f"1799999999000-{n}",
        "stamps": {"uploaded": NOW - 1.2},
    }
    fields.update(over)
    return DoorEvent(**fields)  # type: ignore[arg-type]


def wire_doc(ev: DoorEvent | None = None, signer: DoorSigner = SIGNER) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(signer.sign(ev or event()))
    return doc


def reject_reason(wire: bytes | str | dict[str, Any], **kw: Any) -> str:
    if isinstance(wire, dict):
        wire = canonical_json(wire)
    with pytest.raises(EventRejected) as info:
        verify_event(wire, kw.pop("keys", PUBLIC), "front", now=kw.pop("now", NOW), **kw)
    return info.value.reason


def test_valid_event_verifies() -> None:
    ev = event()
    got = verify_event(SIGNER.sign(ev), PUBLIC, "front", now=NOW)
    assert got == ev and got.granted and got.stream_id == "1799999999000-0"
    # the key may be given as the hex text the CLI prints, or raw bytes
    assert verify_event(SIGNER.sign(ev), PUBLIC.hex, "front", now=NOW) == ev
    assert verify_event(SIGNER.sign(ev), PUBLIC.raw, "front", now=NOW) == ev


def test_deny_event_verifies() -> None:
    ev = event(decision=Decision.DENY, reason=Reason.BELOW_THRESHOLD)
    assert not verify_event(SIGNER.sign(ev), PUBLIC, "front", now=NOW).granted


def test_stolen_lock_key_cannot_open_a_door() -> None:
    """All a lock stores is the public key: with it an attacker can name the
    right key id but cannot make a signature that verifies."""
    doc = wire_doc()
    attacker = Ed25519PrivateKey.generate()
    # 1. his own signature under the door's key id
    forged = dict(doc, sig=attacker.sign(signed_message(PUBLIC.kid, doc["event"])).hex())
    assert reject_reason(forged) == "tampered"
    # 2. the stolen public bytes used as a private seed give another key
    as_seed = Ed25519PrivateKey.from_private_bytes(PUBLIC.raw)
    forged = dict(doc, sig=as_seed.sign(signed_message(PUBLIC.kid, doc["event"])).hex())
    assert reject_reason(forged) == "tampered"
    # 3. his own key id: a lock does not hold that key
    raw = attacker.public_key().public_bytes_raw()
    own = dict(doc, kid=key_id(raw), sig=attacker.sign(signed_message(key_id(raw),
                                                                       doc["event"])).hex())
    assert reject_reason(own) == "unknown_key"
    # and a lock that was handed the attacker's key would accept it: keys matter
    assert verify_event(canonical_json(own), [PUBLIC, DoorPublicKey(raw)], "front", now=NOW)


def test_another_doors_key_is_unknown_and_its_events_are_forged() -> None:
    back = DoorSigner.derive(SECRET, "back")
    assert reject_reason(back.sign(event(door="back"))) == "forged"  # for another door
    # an event for "front" signed with back's key (impossible for the matcher)
    doc = wire_doc()
    doc["kid"] = back.kid
    doc["sig"] = back._private.sign(signed_message(back.kid, doc["event"])).hex()
    assert reject_reason(doc) == "unknown_key"
    assert verify_event(back.sign(event(door="back")), back.public_key, "back", now=NOW)


def test_rotation_window_a_lock_may_hold_old_and_new_keys() -> None:
    new = DoorSigner.derive(SECRET, "front", 2)
    both = DoorKeys([PUBLIC, new.public_key.hex])
    assert len(both) == 2 and set(both) == {PUBLIC.kid, new.kid}
    assert verify_event(SIGNER.sign(event(1)), both, "front", now=NOW)
    assert verify_event(new.sign(event(2)), both, "front", now=NOW)
    assert reject_reason(new.sign(event(3))) == "unknown_key"  # a lock with the old key only
    assert reject_reason(SIGNER.sign(event(4)), keys=new.public_key) == "unknown_key"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("person", "mallory"),
        ("decision", "DENY"),
        ("expires_at", NOW + 3600.0),
        ("distance", 0.3124),
        ("stamps", {}),
        ("stream_id", "1799999999000-9"),
    ],
)
def test_tampered_content(field: str, value: object) -> None:
    doc = wire_doc()
    doc["event"][field] = value
    assert reject_reason(doc) == "tampered"


def test_made_up_signature_is_tampered() -> None:
    assert reject_reason(dict(wire_doc(), sig="00" * 64)) == "tampered"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("alg", "HS256", "forged"),
        ("alg", "none", "forged"),
        ("alg", None, "forged"),
        ("kid", "ABCDEF0123456789", "forged"),
        ("kid", "0" * 15, "forged"),
        ("kid", 7, "forged"),
        ("sig", "", "forged"),
        ("sig", "00" * 63, "forged"),
        ("sig", "AB" * 64, "forged"),
        ("sig", None, "forged"),
        ("event", [], "malformed"),
    ],
)
def test_envelope_fields_are_strict(key: str, value: object, reason: str) -> None:
    doc = wire_doc()
    doc[key] = value
    assert reject_reason(doc) == reason


def test_event_for_another_door_is_forged() -> None:
    doc = wire_doc()
    doc["event"]["door"] = "back"
    assert reject_reason(doc) == "forged"


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"not json",
        b"[]",
        b'{"event": {}, "sig": "00"}',  # the old HMAC format
        b"\xff" * 10,
        b"[" * 5000 + b"]" * 5000,
        b" " * 20_000,
    ],
)
def test_malformed(wire: bytes) -> None:
    assert reject_reason(wire) == "malformed"


def test_extra_or_missing_envelope_keys_are_malformed() -> None:
    assert reject_reason(dict(wire_doc(), extra=1)) == "malformed"
    doc = wire_doc()
    del doc["kid"]
    assert reject_reason(doc) == "malformed"


def test_signed_but_invalid_fields_are_malformed() -> None:
    doc = wire_doc()
    doc["event"]["reason"] = "because"
    doc["sig"] = SIGNER._private.sign(signed_message(SIGNER.kid, doc["event"])).hex()
    assert reject_reason(doc) == "malformed"


def test_an_event_never_recorded_has_no_stream_id_and_is_refused() -> None:
    assert reject_reason(SIGNER.sign(event(stream_id=None))) == "malformed"


def test_a_stream_entry_must_carry_the_event_signed_for_it() -> None:
    wire = SIGNER.sign(event())
    assert verify_event(wire, PUBLIC, "front", now=NOW, stream_id="1799999999000-0")
    assert reject_reason(wire, stream_id="1799999999000-1") == "tampered"


def test_expired() -> None:
    wire = SIGNER.sign(event())
    assert reject_reason(wire, now=NOW + 29.001) == "expired"
    assert verify_event(wire, PUBLIC, "front", now=NOW + 29.0).granted


def test_issued_in_the_future_is_refused() -> None:
    wire = SIGNER.sign(event(issued_at=NOW + 60.0, expires_at=NOW + 90.0))
    assert reject_reason(wire) == "expired"
    within_skew = SIGNER.sign(event(issued_at=NOW + 4.0, expires_at=NOW + 34.0))
    assert verify_event(within_skew, PUBLIC, "front", now=NOW).granted


def test_replayed() -> None:
    guard = ReplayGuard()
    wire = SIGNER.sign(event())
    assert verify_event(wire, PUBLIC, "front", now=NOW, guard=guard).granted
    assert reject_reason(wire, guard=guard) == "replayed"
    assert verify_event(SIGNER.sign(event(1)), PUBLIC, "front", now=NOW, guard=guard)


def test_rejected_events_are_not_remembered() -> None:
    guard = ReplayGuard()
    doc = wire_doc()
    doc["event"]["person"] = "mallory"
    assert reject_reason(doc, guard=guard) == "tampered"
    assert reject_reason(SIGNER.sign(event(1)), guard=guard, now=NOW + 100) == "expired"
    assert len(guard) == 0


def test_replay_guard_forgets_expired_ids_and_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    for n in range(3):
        guard.check_and_remember(f"{n:032x}", NOW + 10.0, NOW)
    assert len(guard) == 3
    with pytest.raises(EventRejected, match="full"):
        guard.check_and_remember(f"{9:032x}", NOW + 10.0, NOW)
    guard.check_and_remember(f"{9:032x}", NOW + 30.0, NOW + 11.0)
    assert len(guard) == 1
    assert f"{0:032x}" not in guard


def test_public_keys_are_parsed_strictly() -> None:
    for bad in ("", "zz" * 32, PUBLIC.hex.upper(), PUBLIC.hex[:-2], PUBLIC.hex + "00"):
        with pytest.raises(ValueError):
            DoorPublicKey.from_text(bad)
    with pytest.raises(ValueError):
        DoorPublicKey(b"\x01" * 31)
    with pytest.raises(ValueError, match="at least one"):
        DoorKeys([])
    assert DoorPublicKey.from_text(f" {PUBLIC.hex}\n") == PUBLIC


def test_event_rejected_reason_is_checked() -> None:
    with pytest.raises(ValueError):
        EventRejected("weird")
