"""Property tests of the lock-side check: whatever arrives on a door's
channel or stream, ``verify_event`` answers with an event or
``EventRejected``, nothing else, and never accepts a changed event."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegate.core.event_verify import (
    REJECT_REASONS,
    EventRejected,
    ReplayGuard,
    canonical_json,
    signed_message,
    verify_event,
)
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner

pytestmark = pytest.mark.unit

PROPS = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000.0
SIGNER = DoorSigner.derive("property-test-secret-0123456789", "front")
PUBLIC = SIGNER.public_key
VALID = DoorEvent(
    id="a" * 32, upload_id="b" * 32, door="front", camera="cam", decision=Decision.OPEN,
    reason=Reason.GRANTED, person="alice", distance=0.3, issued_at=NOW - 1, expires_at=NOW + 29,
    stream_id="1799999999000-0", stamps={"uploaded": NOW - 1.5},
)
VALID_WIRE = SIGNER.sign(VALID)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30,
)


def outcome(wire: bytes | str, **kw: Any) -> DoorEvent | str:
    """The event, or the rejection reason; any other exception fails the test."""
    try:
        return verify_event(wire, PUBLIC, "front", now=NOW, **kw)
    except EventRejected as exc:
        assert exc.reason in REJECT_REASONS
        return exc.reason


@PROPS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_are_rejected(wire: bytes) -> None:
    assert isinstance(outcome(wire), str)


@PROPS
@given(st.text(max_size=2048))
def test_arbitrary_text_is_rejected(wire: str) -> None:
    assert isinstance(outcome(wire), str)


@PROPS
@given(json_values)
def test_arbitrary_json_is_rejected(doc: Any) -> None:
    assert isinstance(outcome(json.dumps(doc)), str)


@PROPS
@given(alg=json_values, kid=json_values, event=json_values, sig=json_values)
def test_arbitrary_envelopes_are_rejected(alg: Any, kid: Any, event: Any, sig: Any) -> None:
    wire = json.dumps({"alg": alg, "kid": kid, "event": event, "sig": sig})
    assert isinstance(outcome(wire), str)


@PROPS
@given(field=st.sampled_from(sorted(VALID.to_dict())) | st.text(max_size=10),
       value=json_values | st.integers(min_value=10**300, max_value=10**310))
def test_any_field_the_door_key_signs_gives_an_event_or_a_rejection(
    field: str, value: Any
) -> None:
    """Even a signed body with a wrong field (a matcher bug: a huge integer,
    a list, an unknown key) never raises anything else."""
    body = {**VALID.to_dict(), field: value}
    try:
        sig = SIGNER._private.sign(signed_message(SIGNER.kid, body)).hex()
    except (ValueError, TypeError):
        return  # NaN or infinity: no canonical form, so the matcher never signs it
    wire = canonical_json({"alg": "Ed25519", "event": body, "kid": SIGNER.kid, "sig": sig})
    got = outcome(wire, guard=ReplayGuard())
    assert isinstance(got, str | DoorEvent)


@PROPS
@given(st.data())
def test_no_change_to_a_signed_wire_is_accepted_as_another_event(data: st.DataObject) -> None:
    wire = bytearray(VALID_WIRE)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        at = data.draw(st.integers(0, max(len(wire) - 1, 0)))
        if kind == "flip" and wire:
            wire[at] ^= data.draw(st.integers(1, 255))
        elif kind == "delete" and wire:
            del wire[at]
        else:
            wire.insert(at, data.draw(st.integers(0, 255)))
    got = outcome(bytes(wire))
    assert got == VALID or isinstance(got, str)


names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
hex32 = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


@PROPS
@given(
    ids=st.tuples(hex32, hex32),
    camera=st.none() | names,
    granted=st.booleans(),
    person=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
    distance=st.none() | st.floats(min_value=0, max_value=4, allow_nan=False),
    issued=times,
    ttl=st.floats(min_value=0, max_value=3600),
    seq=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    stamps=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,31}", fullmatch=True), times,
                           max_size=8),
)
def test_every_valid_event_round_trips(
    ids: tuple[str, str], camera: str | None, granted: bool, person: str,
    distance: float | None, issued: float, ttl: float, seq: tuple[int, int],
    stamps: dict[str, float],
) -> None:
    expires = issued + ttl
    if not math.isfinite(expires):
        return
    event = DoorEvent(
        id=ids[0], upload_id=ids[1], door="front", camera=camera,
        decision=Decision.OPEN if granted else Decision.DENY,
        reason=Reason.GRANTED if granted else Reason.UNKNOWN_PERSON,
        person=person, distance=distance, issued_at=issued, expires_at=expires,
        stream_id=f"{seq[0]}-{seq[1]}", stamps=stamps,
    )
    wire = SIGNER.sign(event)
    got = verify_event(wire, PUBLIC, "front", now=issued, stream_id=event.stream_id)
    assert got == event
