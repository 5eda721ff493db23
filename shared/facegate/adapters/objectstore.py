"""Object-store adapter: the :class:`ObjectStore` protocol and its S3 backend.

:class:`MinioObjectStore` uses the ``minio`` SDK, which speaks to MinIO and
to SeaweedFS's S3 gateway alike. Errors are translated where they enter:

- unreachable store, timeouts, 5xx, other S3 errors ->
  :class:`~facegate.core.errors.StoreUnavailableError` (transient: retry);
- a missing object -> :class:`~facegate.core.errors.ImageError` (permanent,
  reason ``bad_image``) saying the object does not exist;
- an object larger than ``max_bytes`` -> ``ImageError`` "too large",
  decided from the response's length header (or while streaming, for a
  server that sends none) without reading the whole object;
- refused credentials -> :class:`~facegate.core.errors.ConfigError`.

Nothing connects at construction; the first call does.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig

from facegate.adapters.metrics import backend_error
from facegate.core.errors import ConfigError, ImageError, StoreUnavailableError
from facegate.core.keys import UPLOADS_PREFIX
from facegate.runtime.settings import CommonSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

REGION = "us-east-1"
"""Fixed region: the SDK then never asks the server (or a camera-facing
public endpoint) for the bucket's location before signing."""

_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion"})
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None
    etag: str | None
    metadata: Mapping[str, str]
    last_modified: float | None = None
    """When the store wrote the object (unix seconds; S3 gives whole seconds)."""


@runtime_checkable
class ObjectStore(Protocol):
    """What the services need from an object store (one bucket)."""

    bucket: str

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None: ...

    def get(self, key: str, max_bytes: int) -> bytes: ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def list_objects(
        self, prefix: str, *, start_after: str = "", limit: int = 1000
    ) -> list[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def presigned_put(
        self, key: str, expires_s: int, public_endpoint: str | None = None
    ) -> str: ...

    def presigned_get(
        self, key: str, expires_s: int, public_endpoint: str | None = None
    ) -> str: ...

    def ensure_bucket(self) -> None: ...


def _http_client() -> urllib3.PoolManager:
    """Short timeouts and few retries: a dead store must fail fast (the
    Celery task retries), not hang a worker for the SDK's default minutes."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=2.0, read=15.0),
        maxsize=16,
        retries=urllib3.Retry(
            total=2,
            backoff_factor=0.1,
            status_forcelist=[500, 502, 503, 504],
            allowed_methods=None,
        ),
    )


@contextmanager
def _translated(what: str, key: str = "") -> Iterator[None]:
    where = f"{what} {key}".strip()
    try:
        yield
    except S3Error as exc:
        if exc.code in _MISSING_CODES:
            raise ImageError(f"object {key!r} does not exist in the bucket") from exc
        backend_error("s3")
        if exc.code in _CREDENTIAL_CODES:
            raise ConfigError(
                f"object store refused the credentials ({exc.code}) on {where}"
            ) from exc
        raise StoreUnavailableError(f"object store: {where}: {exc.code}: {exc.message}") from exc
    except (ServerError, InvalidResponseError) as exc:
        backend_error("s3")
        raise StoreUnavailableError(f"object store: {where}: {exc}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        backend_error("s3")
        raise StoreUnavailableError(f"object store unreachable: {where}: {exc}") from exc


class MinioObjectStore:
    """The S3 object store of ``settings`` (endpoint, keys, bucket)."""

    def __init__(self, settings: CommonSettings, *, bucket: str | None = None) -> None:
        self.settings = settings
        self.bucket = bucket or settings.bucket
        self._http = _http_client()
        self.client = self._client(settings.s3_endpoint)

    def _client(self, endpoint: str) -> Minio:
        return Minio(
            endpoint,
            access_key=self.settings.s3_access_key.get_secret_value(),
            secret_key=self.settings.s3_secret_key.get_secret_value(),
            secure=self.settings.s3_secure,
            region=REGION,
            http_client=self._http,
        )

    def _call(self, what: str, key: str, func: Callable[[], T]) -> T:
        with _translated(what, key):
            return func()

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet."""
        with _translated("ensure_bucket", self.bucket):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
                log.info("created bucket %s", self.bucket)

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        with _translated("put", key):
            self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=dict(metadata) if metadata else None,
            )

    def get(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes; ``ImageError`` when missing or larger than
        ``max_bytes`` (refused from the length header before reading)."""
        with _translated("get", key):
            response: Any = self.client.get_object(self.bucket, key)
            try:
                length = response.headers.get("Content-Length")
                if length is not None and int(length) > max_bytes:
                    raise ImageError(
                        f"object {key!r} is too large: {int(length)} bytes > {max_bytes}"
                    )
                chunks: list[bytes] = []
                total = 0
                for chunk in response.stream(_CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise ImageError(f"object {key!r} is too large: > {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                response.close()
                response.release_conn()

    def stat(self, key: str) -> ObjectInfo | None:
        """Size, type and user metadata; ``None`` when the object is missing."""
        try:
            with _translated("stat", key):
                st: Any = self.client.stat_object(self.bucket, key)
        except ImageError:
            return None
        meta: dict[str, str] = {}
        for name, value in (st.metadata or {}).items():
            low = str(name).lower()
            if low.startswith("x-amz-meta-"):
                meta[low[len("x-amz-meta-") :]] = str(value)
        return ObjectInfo(
            key=key,
            size=int(st.size or 0),
            content_type=st.content_type,
            etag=st.etag,
            metadata=meta,
            last_modified=st.last_modified.timestamp() if st.last_modified else None,
        )

    def list_objects(
        self, prefix: str, *, start_after: str = "", limit: int = 1000
    ) -> list[ObjectInfo]:
        """At most ``limit`` objects under ``prefix`` whose keys sort after
        ``start_after``, in key order (one ListObjectsV2 page for ``limit``
        <= 1000): size, ETag and Last-Modified, no content type or metadata."""
        with _translated("list", prefix):
            listed = self.client.list_objects(
                self.bucket, prefix=prefix, recursive=True, start_after=start_after or None
            )
            out: list[ObjectInfo] = []
            for obj in itertools.islice(listed, max(0, limit)):
                if obj.object_name is None or obj.is_dir:
                    continue
                out.append(
                    ObjectInfo(
                        key=obj.object_name,
                        size=int(obj.size or 0),
                        content_type=None,
                        etag=obj.etag,
                        metadata={},
                        last_modified=obj.last_modified.timestamp() if obj.last_modified else None,
                    )
                )
        return out

    def delete(self, key: str) -> None:
        """Remove one object (no error when it is already gone)."""
        with _translated("delete", key):
            self.client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix``; returns how many were listed."""
        if not prefix:
            raise ValueError("refusing to delete the whole bucket: give a prefix")
        with _translated("delete_prefix", prefix):
            names = [
                o.object_name
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name is not None
            ]
            if not names:
                return 0
            errors = list(self.client.remove_objects(self.bucket, (DeleteObject(n) for n in names)))
        if errors:
            raise StoreUnavailableError(
                f"object store: {len(errors)} of {len(names)} objects under {prefix!r} "
                f"were not deleted (first: {errors[0]})"
            )
        return len(names)

    def presigned_put(self, key: str, expires_s: int, public_endpoint: str | None = None) -> str:
        """A URL a camera PUTs its image to, valid ``expires_s`` seconds.

        The signature covers the host, so ``public_endpoint`` (the
        ``host:port`` cameras reach, e.g. behind a proxy) signs with a client
        for that host. No request is made: the region is fixed."""
        endpoint = public_endpoint or self.settings.s3_endpoint
        client = self.client if endpoint == self.settings.s3_endpoint else self._client(endpoint)
        with _translated("presign", key):
            return str(
                client.presigned_put_object(self.bucket, key, expires=timedelta(seconds=expires_s))
            )

    def presigned_get(self, key: str, expires_s: int, public_endpoint: str | None = None) -> str:
        """A URL that reads one object for ``expires_s`` seconds (the
        console's thumbnails: the bucket itself stays private)."""
        endpoint = public_endpoint or self.settings.s3_endpoint
        client = self.client if endpoint == self.settings.s3_endpoint else self._client(endpoint)
        with _translated("presign", key):
            return str(
                client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_s))
            )

    def configure_minio_webhook(self, config_id: str, prefix: str = UPLOADS_PREFIX) -> None:
        """Wire the bucket's ``s3:ObjectCreated:*`` events under ``prefix``
        to MinIO's webhook target ``config_id`` (the server must define
        ``MINIO_NOTIFY_WEBHOOK_ENABLE_<ID>`` and its endpoint). Used when
        ``FACEGATE_NOTIFICATIONS=minio``; SeaweedFS has no such API (its
        filer is configured with ``notification.toml`` instead)."""
        config = NotificationConfig(
            queue_config_list=[
                QueueConfig(
                    ["s3:ObjectCreated:*"],
                    config_id=f"facegate-{config_id}",
                    prefix_filter_rule=PrefixFilterRule(prefix),
                    queue=f"arn:minio:sqs::{config_id}:webhook",
                )
            ]
        )
        with _translated("set_bucket_notification", self.bucket):
            self.client.set_bucket_notification(self.bucket, config)


__all__ = ["REGION", "MinioObjectStore", "ObjectInfo", "ObjectStore"]
