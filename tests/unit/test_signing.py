"""The matcher's half of door events: derived Ed25519 keys, rotation, the wire (pure)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from facegate.core.event_verify import SIGNED_PREFIX, DoorPublicKey, canonical_json, key_id
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner, door_public_key, sign_event

pytestmark = pytest.mark.unit

SECRET = "d4F9s8A7g6H5j4K3l2Z1x0Cv"
NOW = 1_800_000_000.0


def event(door: str = "front") -> DoorEvent:
    return DoorEvent(
        id="1" * 32, upload_id="2" * 32, door=door, decision=Decision.OPEN,
        reason=Reason.GRANTED, person="alice", distance=0.25, issued_at=NOW,
        expires_at=NOW + 30.0, stream_id="1800000000000-0",
    )


def test_door_seed_is_hkdf_of_the_root_secret_door_and_version() -> None:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"facegate door-event keys v1",
                info=b"door=front;version=1").derive(SECRET.encode())
    expected = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = expected.public_bytes(Encoding.Raw, PublicFormat.Raw)
    signer = DoorSigner.derive(SECRET, "front")
    assert signer.public_key.raw == raw and signer.version == 1
    assert signer.kid == key_id(raw) == DoorPublicKey(raw).kid
    assert door_public_key(SECRET, "front") == signer.public_key


def test_every_door_version_and_secret_has_its_own_key() -> None:
    keys = {
        DoorSigner.derive(SECRET, "front").kid,
        DoorSigner.derive(SECRET, "back").kid,
        DoorSigner.derive(SECRET, "front", 2).kid,
        DoorSigner.derive(SECRET + "x", "front").kid,
    }
    assert len(keys) == 4
    # deterministic: the matcher and the CLI derive the same key
    assert DoorSigner.derive(SECRET, "front", 2).kid == DoorSigner.derive(SECRET, "front", 2).kid


@pytest.mark.parametrize("version", [0, -1, 1_000_001, True, 1.0])
def test_key_versions_are_checked(version: object) -> None:
    with pytest.raises(ValueError):
        DoorSigner.derive(SECRET, "front", version)  # type: ignore[arg-type]


def test_bad_door_or_empty_secret_is_refused() -> None:
    with pytest.raises(Exception, match="door"):
        DoorSigner.derive(SECRET, "a/b")
    with pytest.raises(ValueError, match="empty"):
        DoorSigner.derive("", "front")


def test_wire_format_is_ed25519_over_the_canonical_envelope() -> None:
    signer = DoorSigner.derive(SECRET, "front")
    wire = sign_event(event(), signer)
    doc = json.loads(wire)
    assert set(doc) == {"alg", "event", "kid", "sig"}
    assert doc["alg"] == "Ed25519" and doc["kid"] == signer.kid
    assert doc["event"] == event().to_dict() and doc["event"]["stream_id"] == "1800000000000-0"
    assert wire == canonical_json(doc)
    message = SIGNED_PREFIX + canonical_json({k: doc[k] for k in ("alg", "event", "kid")})
    # checked with the bare library: nothing of facegate's verifier involved
    Ed25519PublicKey.from_public_bytes(signer.public_key.raw).verify(
        bytes.fromhex(doc["sig"]), message
    )


def test_a_door_key_signs_only_its_own_door() -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        DoorSigner.derive(SECRET, "back").sign(event("front"))
