"""The names an integrator imports are exported on purpose (and pinned here:
changing the list is a decision, not an accident)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import facegate

pytestmark = pytest.mark.unit

PUBLIC = [
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


def test_the_public_names_are_pinned() -> None:
    assert sorted(facegate.__all__) == sorted(PUBLIC)


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_every_public_name_resolves_to_its_home(name: str) -> None:
    value = getattr(facegate, name)
    home = getattr(value, "__module__", "")
    assert home.startswith("facegate."), (name, home)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = facegate.no_such_thing  # type: ignore[attr-defined]


def test_importing_facegate_is_light() -> None:
    code = (
        "import sys, facegate\n"
        "print(sorted(m for m in ('numpy', 'redis', 'celery', 'tensorflow', 'minio')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


SUBPACKAGE_API = {
    "facegate.core.matching": [
        "REASONS", "Gallery", "IdentifyResult", "MatchReason", "VerifyResult", "distances",
        "identify", "identify_many", "l2_normalize", "reference_identify", "reference_verify",
        "verify",
    ],
    "facegate.clients.lock": ["Backoff", "DoorListener", "Received"],
    "facegate.clients.lock_state": ["DEFAULT_MAX_ENTRIES", "STATE_VERSION", "LockState"],
    "facegate.core.event_verify": [
        "ALG", "MAX_WIRE_BYTES", "REJECT_REASONS", "DoorKeys", "DoorPublicKey", "EventGuard",
        "EventRejected", "ReplayGuard", "canonical_json", "key_id", "signed_message",
        "verify_event",
    ],
    "facegate.clients.camera": None,
    "facegate.clients.admin": None,
}


@pytest.mark.parametrize("module", sorted(SUBPACKAGE_API))
def test_modules_declare_what_they_export(module: str) -> None:
    """Each module an integrator reaches into has an explicit ``__all__``
    whose names exist (and, where pinned here, is exactly this list)."""
    import importlib

    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    assert all(hasattr(mod, n) for n in exported)
    pinned = SUBPACKAGE_API[module]
    if pinned is not None:
        assert sorted(exported) == sorted(pinned)


def test_all_and_the_lazy_table_agree() -> None:
    assert set(facegate.__all__) == set(facegate._EXPORTS) | {"__version__"}
