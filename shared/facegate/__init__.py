"""facegate: face-recognition door access.

The names an integrator needs are importable from here, loaded on first use
(importing ``facegate`` itself imports nothing heavy: no numpy, no Redis
client, no TensorFlow)::

    from facegate import build_face_encoder, verify, identify, Gallery   # the engine
    from facegate import DoorListener, LockState, verify_event           # a lock
    from facegate import CameraClient                                    # a camera
    from facegate import Admin                                           # doors, people

The package is cut into rooms by role (docs/DESIGN.md): ``core`` (pure
logic), ``runtime`` (settings, start-up), ``engine`` (inference),
``adapters`` (Redis, the object store, Celery), ``training``, ``clients``
(camera, lock, admin) and ``tools`` (command line, local stack, demo).
``tests/unit/test_public_api.py`` pins the list below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # the face engine (TensorFlow is imported only when a model is built)
    "build_face_encoder": "facegate.engine.factory",
    "FaceEncoder": "facegate.engine.types",
    "Face": "facegate.engine.types",
    "load_image_file": "facegate.engine.images",
    "decode_image": "facegate.engine.images",
    # embedding math
    "distances": "facegate.core.matching",
    "verify": "facegate.core.matching",
    "identify": "facegate.core.matching",
    "identify_many": "facegate.core.matching",
    "l2_normalize": "facegate.core.matching",
    "Gallery": "facegate.core.matching",
    "VerifyResult": "facegate.core.matching",
    "IdentifyResult": "facegate.core.matching",
    # door events and the lock side
    "DoorEvent": "facegate.core.messages",
    "Decision": "facegate.core.messages",
    "Reason": "facegate.core.messages",
    "verify_event": "facegate.core.event_verify",
    "EventRejected": "facegate.core.event_verify",
    "ReplayGuard": "facegate.core.event_verify",
    "DoorKeys": "facegate.core.event_verify",
    "DoorPublicKey": "facegate.core.event_verify",
    "DoorListener": "facegate.clients.lock",
    "Received": "facegate.clients.lock",
    "LockState": "facegate.clients.lock_state",
    # cameras and administration
    "CameraClient": "facegate.clients.camera",
    "Ticket": "facegate.clients.camera",
    "Admin": "facegate.clients.admin",
    "DoorMode": "facegate.core.policy",
    "DoorPolicy": "facegate.core.policy",
    # errors
    "FacegateError": "facegate.core.errors",
    "ConfigError": "facegate.core.errors",
    "PermanentError": "facegate.core.errors",
    "TransientError": "facegate.core.errors",
}

__all__ = [
    "Admin",
    "CameraClient",
    "ConfigError",
    "Decision",
    "DoorEvent",
    "DoorKeys",
    "DoorListener",
    "DoorMode",
    "DoorPolicy",
    "DoorPublicKey",
    "EventRejected",
    "Face",
    "FaceEncoder",
    "FacegateError",
    "Gallery",
    "IdentifyResult",
    "LockState",
    "PermanentError",
    "Reason",
    "Received",
    "ReplayGuard",
    "Ticket",
    "TransientError",
    "VerifyResult",
    "__version__",
    "build_face_encoder",
    "decode_image",
    "distances",
    "identify",
    "identify_many",
    "l2_normalize",
    "load_image_file",
    "verify",
    "verify_event",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'facegate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what static checkers see; nothing of it runs
    from facegate.clients.admin import Admin
    from facegate.clients.camera import CameraClient, Ticket
    from facegate.clients.lock import DoorListener, Received
    from facegate.clients.lock_state import LockState
    from facegate.core.errors import ConfigError, FacegateError, PermanentError, TransientError
    from facegate.core.event_verify import (
        DoorKeys,
        DoorPublicKey,
        EventRejected,
        ReplayGuard,
        verify_event,
    )
    from facegate.core.matching import (
        Gallery,
        IdentifyResult,
        VerifyResult,
        distances,
        identify,
        identify_many,
        l2_normalize,
        verify,
    )
    from facegate.core.messages import Decision, DoorEvent, Reason
    from facegate.core.policy import DoorMode, DoorPolicy
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.images import decode_image, load_image_file
    from facegate.engine.types import Face, FaceEncoder
