"""Key names and object-key layout (pure)."""

from __future__ import annotations

import pytest

from facegate.core import keys
from facegate.core.errors import BadMessageError

pytestmark = pytest.mark.unit

UID = "0123456789abcdef0123456789abcdef"


def test_redis_names_match_design() -> None:
    assert keys.PEOPLE == "facegate:people"
    assert keys.GALLERY_VERSION == "facegate:gallery:version"
    assert keys.DOORS == "facegate:doors"
    assert keys.AUDIT_STREAM == "facegate:audit"
    assert keys.probe_key(UID) == f"facegate:probe:{UID}"
    assert keys.person_key("alice") == "facegate:person:alice"
    assert keys.door_config_key("front") == "facegate:door:front"
    assert keys.claim_key(UID) == f"facegate:claim:{UID}"
    assert keys.decision_key(UID) == f"facegate:decision:{UID}"
    assert keys.door_stream("front") == "facegate:events:front"
    assert keys.door_channel("front") == "facegate:door:front:events"
    assert keys.reply_key(UID) == f"facegate:reply:{UID}"


def test_new_upload_ids_are_unique_hex() -> None:
    ids = {keys.new_upload_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(keys.check_upload_id(i) == i for i in ids)


def test_upload_key_round_trip() -> None:
    key = keys.upload_object_key("front", "cam_1", UID, ".JPG")
    assert key == f"uploads/front/cam_1/{UID}.jpg"
    assert keys.parse_upload_key(key) == ("front", "cam_1", UID)


@pytest.mark.parametrize(
    "key",
    [
        f"uploads/front/{UID}.jpg",
        f"uploads/front/cam/extra/{UID}.jpg",
        f"enroll/front/cam/{UID}.jpg",
        f"/uploads/front/cam/{UID}.jpg",
        f"uploads/front/cam/{UID}",
        f"uploads/front/cam/{UID[:-1]}.jpg",
        f"uploads/fr:nt/cam/{UID}.jpg",
        f"uploads/../cam/{UID}.jpg",
        f"uploads/front/cam/{UID}.jpg\n",
        "",
    ],
)
def test_parse_upload_key_refuses_anything_else(key: str) -> None:
    with pytest.raises(BadMessageError):
        keys.parse_upload_key(key)


def test_enroll_key_round_trip() -> None:
    key = keys.enroll_object_key("Barack_Obama", UID, "png")
    assert key == f"enroll/Barack_Obama/{UID}.png"
    assert keys.parse_enroll_key(key) == ("Barack_Obama", UID)


@pytest.mark.parametrize(
    ("func", "arg"),
    [
        (keys.door_config_key, "a:b"),
        (keys.door_stream, ""),
        (keys.door_channel, "x" * 65),
        (keys.person_key, ".hidden"),
        (keys.person_key, "a b"),
        (keys.probe_key, "zz"),
        (keys.decision_key, UID + "0"),
    ],
)
def test_builders_validate_ids(func: object, arg: str) -> None:
    assert callable(func)
    with pytest.raises(BadMessageError):
        func(arg)


def test_bad_extension_refused() -> None:
    with pytest.raises(BadMessageError):
        keys.upload_object_key("front", "cam", UID, "jp/g")
    with pytest.raises(BadMessageError):
        keys.upload_object_key("front", "cam", UID, "")
