"""MinioObjectStore against a real S3 server (SeaweedFS, from the conftest)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from pydantic import SecretStr

from facegate.adapters.objectstore import MinioObjectStore, ObjectStore
from facegate.core import keys
from facegate.core.errors import ConfigError, ImageError, StoreUnavailableError
from facegate.runtime.settings import CommonSettings

pytestmark = pytest.mark.integration


def fresh_key(door: str = "front") -> str:
    return keys.upload_object_key(door, "cam", keys.new_upload_id(), "jpg")


def test_is_an_object_store(object_store: MinioObjectStore) -> None:
    assert isinstance(object_store, ObjectStore)


def test_put_get_stat_delete(object_store: MinioObjectStore) -> None:
    key = fresh_key()
    data = bytes(range(256)) * 100
    object_store.put(key, data, "image/jpeg", {"camera": "cam"})
    assert object_store.get(key, max_bytes=len(data)) == data
    info = object_store.stat(key)
    assert info is not None
    assert info.size == len(data)
    assert info.content_type == "image/jpeg"
    assert info.metadata.get("camera") == "cam"
    object_store.delete(key)
    assert object_store.stat(key) is None
    object_store.delete(key)  # already gone: no error


def test_missing_object_is_a_permanent_bad_image(object_store: MinioObjectStore) -> None:
    key = fresh_key()
    with pytest.raises(ImageError, match="does not exist") as info:
        object_store.get(key, max_bytes=1000)
    assert info.value.reason == "bad_image"


def test_too_large_is_refused(object_store: MinioObjectStore) -> None:
    key = fresh_key()
    object_store.put(key, b"x" * 5000, "image/jpeg")
    with pytest.raises(ImageError, match="too large"):
        object_store.get(key, max_bytes=4999)
    assert len(object_store.get(key, max_bytes=5000)) == 5000


def test_delete_prefix(object_store: MinioObjectStore) -> None:
    door = "door-" + keys.new_upload_id()[:8]
    for _ in range(3):
        object_store.put(fresh_key(door), b"abc", "image/jpeg")
    keep = fresh_key()
    object_store.put(keep, b"abc", "image/jpeg")
    assert object_store.delete_prefix(f"uploads/{door}/") == 3
    assert object_store.delete_prefix(f"uploads/{door}/") == 0
    assert object_store.stat(keep) is not None
    with pytest.raises(ValueError):
        object_store.delete_prefix("")


def test_presigned_put_works_and_expires(object_store: MinioObjectStore) -> None:
    key = fresh_key()
    url = object_store.presigned_put(key, expires_s=60)
    req = urllib.request.Request(url, data=b"camera bytes", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert object_store.get(key, max_bytes=100) == b"camera bytes"
    # a URL for another key does not write this one
    other = fresh_key()
    short = object_store.presigned_put(other, expires_s=1)
    time.sleep(2.1)
    req = urllib.request.Request(short, data=b"late", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    info.value.close()
    assert info.value.code == 403
    assert object_store.stat(other) is None


def test_presigned_get_reads_one_object_until_it_expires(object_store: MinioObjectStore) -> None:
    key = fresh_key()
    object_store.put(key, b"snapshot bytes", "image/jpeg")
    url = object_store.presigned_get(key, expires_s=60)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"snapshot bytes"
    # the bucket itself is private: the same URL without its signature is refused
    bare = url.split("?", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bare, timeout=10)
    info.value.close()
    assert info.value.code == 403
    short = object_store.presigned_get(key, expires_s=1)
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(short, timeout=10)
    info.value.close()
    assert info.value.code == 403
    url = object_store.presigned_get(key, 60, public_endpoint="console.example.org:9000")
    assert url.startswith("http://console.example.org:9000/")


def test_presigned_put_for_a_public_endpoint(object_store: MinioObjectStore) -> None:
    url = object_store.presigned_put(fresh_key(), 60, public_endpoint="cams.example.org:9000")
    assert url.startswith("http://cams.example.org:9000/")


def test_unreachable_store_is_transient(s3_settings: CommonSettings) -> None:
    dead = MinioObjectStore(s3_settings.model_copy(update={"s3_endpoint": "127.0.0.1:1"}))
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        dead.get(fresh_key(), max_bytes=10)
    assert time.monotonic() - t0 < 10.0
    with pytest.raises(StoreUnavailableError):
        dead.put(fresh_key(), b"x", "image/jpeg")


def test_wrong_credentials_are_a_config_error(s3_settings: CommonSettings) -> None:
    bad = MinioObjectStore(
        s3_settings.model_copy(
            update={"s3_secret_key": SecretStr("definitely-not-the-secret-key")}
        )
    )
    with pytest.raises(ConfigError):
        bad.put(fresh_key(), b"x", "image/jpeg")
