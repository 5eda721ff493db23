"""An in-memory :class:`~facegate.adapters.objectstore.ObjectStore`: the
fake the services' unit tests run on (one bucket, thread-safe).

It keeps the behaviour callers rely on: a missing object is
:class:`~facegate.core.errors.ImageError` (``bad_image``), an object larger
than ``max_bytes`` too, ``available = False`` makes every call raise
:class:`~facegate.core.errors.StoreUnavailableError`, and a presigned URL
names its key (``memory://<bucket>/<key>?expires=<s>``) so a test can PUT
"through" it with :meth:`MemoryObjectStore.put`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from facegate.adapters.objectstore import ObjectInfo
from facegate.core.errors import ImageError, StoreUnavailableError


class MemoryObjectStore:
    """A bucket in a dict."""

    def __init__(
        self, bucket: str = "facegate-uploads", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.bucket = bucket
        self.clock = clock
        """Gives each object its Last-Modified (whole seconds, as S3 does)."""
        self.available = True
        self.presigned: list[tuple[str, int]] = []
        """``(key, expires_s)`` of every presigned PUT issued."""
        self._objects: dict[str, tuple[bytes, str, dict[str, str], float]] = {}
        self._lock = threading.Lock()

    def _check(self, what: str) -> None:
        if not self.available:
            raise StoreUnavailableError(f"memory object store: {what}: unavailable")

    def ensure_bucket(self) -> None:
        self._check("ensure_bucket")

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._check(f"put {key}")
            written = float(int(self.clock()))
            self._objects[key] = (bytes(data), content_type, dict(metadata or {}), written)

    def get(self, key: str, max_bytes: int) -> bytes:
        with self._lock:
            self._check(f"get {key}")
            found = self._objects.get(key)
        if found is None:
            raise ImageError(f"object {key!r} does not exist in the bucket")
        if len(found[0]) > max_bytes:
            raise ImageError(f"object {key!r} is too large: {len(found[0])} > {max_bytes} bytes")
        return found[0]

    def stat(self, key: str) -> ObjectInfo | None:
        with self._lock:
            self._check(f"stat {key}")
            found = self._objects.get(key)
        if found is None:
            return None
        data, content_type, metadata, written = found
        return ObjectInfo(key, len(data), content_type, None, metadata, written)

    def list_objects(
        self, prefix: str, *, start_after: str = "", limit: int = 1000
    ) -> list[ObjectInfo]:
        with self._lock:
            self._check(f"list {prefix}")
            names = sorted(k for k in self._objects if k.startswith(prefix) and k > start_after)
            found = [(name, self._objects[name]) for name in names[: max(0, limit)]]
        return [
            ObjectInfo(name, len(data), None, None, {}, written)
            for name, (data, _type, _meta, written) in found
        ]

    def delete(self, key: str) -> None:
        with self._lock:
            self._check(f"delete {key}")
            self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole bucket: give a prefix")
        with self._lock:
            self._check(f"delete_prefix {prefix}")
            names = [k for k in self._objects if k.startswith(prefix)]
            for name in names:
                del self._objects[name]
        return len(names)

    def presigned_put(self, key: str, expires_s: int, public_endpoint: str | None = None) -> str:
        with self._lock:
            self._check(f"presign {key}")
            self.presigned.append((key, expires_s))
        return f"memory://{self.bucket}/{key}?expires={expires_s}"

    def presigned_get(self, key: str, expires_s: int, public_endpoint: str | None = None) -> str:
        with self._lock:
            self._check(f"presign {key}")
        return f"memory://{self.bucket}/{key}?get&expires={expires_s}"

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)


__all__ = ["MemoryObjectStore"]
