"""The matcher's half of door events: each door's Ed25519 private key, and signing.

Keys are derived, never stored: a door's 32-byte Ed25519 seed is::

    HKDF-SHA256(ikm=FACEGATE_SIGNING_SECRET, salt="facegate door-event keys v1",
                info="door=<door>;version=<n>", length=32)

so the matcher (and the CLI that prints public keys) holds one root secret,
every door has its own key pair, and rotating a door's key is bumping ``n``
(the door's ``key_version`` in Redis; ``facegate doors rotate-key DOOR``).
A lock is given only the public key (:class:`~facegate.core.event_verify.DoorPublicKey`,
``facegate doors key DOOR``), which verifies but cannot sign. What the wire
looks like and how a lock checks it: :mod:`facegate.core.event_verify`.

Changing the root secret changes every door's key at once (what to do when
the root itself may have leaked); bumping one door's version changes that
door's key only.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from facegate.core import keys
from facegate.core.event_verify import (
    ALG,
    DoorPublicKey,
    canonical_json,
    signed_message,
)
from facegate.core.messages import DoorEvent

KDF_SALT: Final = b"facegate door-event keys v1"
FIRST_KEY_VERSION: Final = 1
MAX_KEY_VERSION: Final = 1_000_000


def _secret_bytes(secret: str | bytes) -> bytes:
    data = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not data:
        raise ValueError("the signing secret is empty")
    return data


def _check_version(version: int) -> int:
    if type(version) is not int or not FIRST_KEY_VERSION <= version <= MAX_KEY_VERSION:
        raise ValueError(f"a key version is an integer 1..{MAX_KEY_VERSION}, got {version!r}")
    return version


class DoorSigner:
    """One door's private key (version ``version``): what the matcher signs with."""

    __slots__ = ("_private", "door", "public_key", "version")

    def __init__(self, private: Ed25519PrivateKey, door: str, version: int) -> None:
        self._private = private
        self.door = keys.check_door(door)
        self.version = _check_version(version)
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = DoorPublicKey(raw)

    @classmethod
    def derive(cls, secret: str | bytes, door: str, version: int = FIRST_KEY_VERSION) -> DoorSigner:
        """The key of ``door`` at ``version`` from the deployment's root secret."""
        keys.check_door(door)
        seed = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=KDF_SALT,
            info=f"door={door};version={_check_version(version)}".encode(),
        ).derive(_secret_bytes(secret))
        return cls(Ed25519PrivateKey.from_private_bytes(seed), door, version)

    @property
    def kid(self) -> str:
        return self.public_key.kid

    def sign(self, event: DoorEvent) -> bytes:
        """The wire form of ``event`` (which must be this door's)."""
        if event.door != self.door:
            raise ValueError(f"a key of door {self.door} cannot sign an event of {event.door}")
        body = event.to_dict()
        signature = self._private.sign(signed_message(self.kid, body))
        return canonical_json({"alg": ALG, "event": body, "kid": self.kid, "sig": signature.hex()})

    def __repr__(self) -> str:
        return f"DoorSigner(door={self.door}, version={self.version}, kid={self.kid})"


def sign_event(event: DoorEvent, signer: DoorSigner) -> bytes:
    """The wire form of ``event`` signed by its door's key."""
    return signer.sign(event)


def door_public_key(
    secret: str | bytes, door: str, version: int = FIRST_KEY_VERSION
) -> DoorPublicKey:
    """What a lock installer is given for ``door`` at ``version``."""
    return DoorSigner.derive(secret, door, version).public_key


__all__ = [
    "FIRST_KEY_VERSION",
    "KDF_SALT",
    "DoorSigner",
    "door_public_key",
    "sign_event",
]
