"""One frozen settings object per service, read from the environment once.

::

    settings = MatcherSettings.from_env()      # os.environ
    settings = MatcherSettings.from_env({"FACEGATE_THRESHOLD": "0.55"})

Every value is parsed and bounds-checked; anything wrong raises
:class:`~facegate.core.errors.ConfigError` naming the variable. With
``FACEGATE_ENV=production`` every secret must be set explicitly and must not
look like a placeholder (empty, ``change-me``, ``minioadmin``, the
development defaults, shorter than 16 characters...). In ``development`` the
secrets default to values that say they are for development only.

``describe()`` lists the settings as ``{VARIABLE: value}`` with secrets
masked, which is what every service's ``--check-config`` prints.

The service classes inherit the common settings, so ``settings.redis_url``
works on all of them and :func:`facegate.adapters.celery_app.make_celery` takes any.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

from facegate.core.errors import ConfigError

ENVIRONMENTS = ("development", "production")
NOTIFICATION_MODES = ("seaweedfs", "minio", "none")

DEV_S3_ACCESS_KEY = "facegate-dev-access"
DEV_S3_SECRET_KEY = "facegate-dev-secret-not-for-production"
DEV_SIGNING_SECRET = "facegate-dev-signing-secret-not-for-production"
DEV_WEBHOOK_TOKEN = "facegate-dev-webhook-token-not-for-production"
DEV_CAMERA_TOKEN = "facegate-dev-camera-token-not-for-production"

PLACEHOLDERS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "change_me",
        "changethis",
        "secret",
        "password",
        "minioadmin",
        "admin",
        "test",
        "token",
        "xxx",
        "todo",
        "default",
    }
)
MIN_SECRET_LENGTH = 16

T = TypeVar("T")


def _int(text: str) -> int:
    return int(text.strip(), 10)


def _float(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("want true/false")


def _str(text: str) -> str:
    return text.strip()


def _path(text: str) -> Path:
    return Path(text.strip()).expanduser()


class _Env:
    """Reads, parses and bounds-checks variables, naming them in errors."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value

    def get(
        self,
        name: str,
        parse: Callable[[str], T],
        default: T,
        *,
        low: float | None = None,
        high: float | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> T:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = parse(text)
        except ValueError as exc:
            raise ConfigError(f"{name}={text!r}: {exc}") from exc
        if isinstance(value, int | float) and not isinstance(value, bool):
            if low is not None and value < low:
                raise ConfigError(f"{name}={text!r}: must be >= {low}")
            if high is not None and value > high:
                raise ConfigError(f"{name}={text!r}: must be <= {high}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{name}={text!r}: must be one of {', '.join(choices)}")
        return value

    def secret(self, name: str, production: bool, dev_default: str, *, min_length: int = 16) -> str:
        text = self.raw(name)
        if text is None:
            if production:
                raise ConfigError(f"{name} must be set when FACEGATE_ENV=production")
            return dev_default
        value = text.strip()
        if production:
            reason = placeholder_reason(value, min_length=min_length)
            if reason:
                raise ConfigError(f"{name} {reason}; refused when FACEGATE_ENV=production")
        return value


def placeholder_reason(value: str, *, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """Why ``value`` is unfit as a production secret, or ``None`` when it is fine."""
    low = value.strip().lower()
    if low in PLACEHOLDERS:
        return "is a placeholder"
    if (
        value
        in (
            DEV_S3_ACCESS_KEY,
            DEV_S3_SECRET_KEY,
            DEV_SIGNING_SECRET,
            DEV_WEBHOOK_TOKEN,
            DEV_CAMERA_TOKEN,
        )
        or "not-for-production" in low
    ):
        return "is a development default"
    if "change" in low and "me" in low:
        return "looks like a placeholder"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters"
    if min_length >= MIN_SECRET_LENGTH and len(set(value)) < 4:
        return "has fewer than 4 distinct characters"
    return None


def _default_broker(redis_url: str) -> str:
    """The Redis URL with database 1 (data in 0, Celery's queues in 1)."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, "/1", parts.query, parts.fragment))


def _check_redis_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme != "unix" and not parts.hostname
    ):
        raise ConfigError(f"{name}={url!r}: want redis://host:port/db")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"{name}={url!r}: bad port") from exc
    return url


def _check_endpoint(name: str, endpoint: str) -> str:
    """``host:port`` without a scheme, as the minio SDK wants it."""
    if "://" in endpoint or "/" in endpoint or not endpoint:
        raise ConfigError(f"{name}={endpoint!r}: want host:port without scheme or path")
    host, _, port = endpoint.rpartition(":")
    if port and host and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ConfigError(f"{name}={endpoint!r}: bad port")
    return endpoint


@dataclass(frozen=True, kw_only=True)
class CommonSettings:
    """What every service reads (see docs/DESIGN.md, "Settings")."""

    env: str = "development"
    redis_url: str = "redis://127.0.0.1:6390/0"
    broker_url: str = "redis://127.0.0.1:6390/1"
    s3_endpoint: str = "127.0.0.1:18333"
    s3_access_key: str = DEV_S3_ACCESS_KEY
    s3_secret_key: str = DEV_S3_SECRET_KEY
    s3_secure: bool = False
    bucket: str = "facegate-uploads"
    signing_secret: str = DEV_SIGNING_SECRET
    log_level: str = "INFO"
    worker_concurrency: int = 0
    """Celery worker concurrency; 0 = the service's own default."""
    prefetch_multiplier: int = 1
    visibility_timeout_s: int = 60

    SECRETS: ClassVar[frozenset[str]] = frozenset(
        {"s3_access_key", "s3_secret_key", "signing_secret"}
    )
    ENV_NAMES: ClassVar[dict[str, str]] = {
        "env": "FACEGATE_ENV",
        "redis_url": "FACEGATE_REDIS_URL",
        "broker_url": "FACEGATE_BROKER_URL",
        "s3_endpoint": "FACEGATE_S3_ENDPOINT",
        "s3_access_key": "FACEGATE_S3_ACCESS_KEY",
        "s3_secret_key": "FACEGATE_S3_SECRET_KEY",
        "s3_secure": "FACEGATE_S3_SECURE",
        "bucket": "FACEGATE_BUCKET",
        "signing_secret": "FACEGATE_SIGNING_SECRET",
        "log_level": "FACEGATE_LOG_LEVEL",
        "worker_concurrency": "FACEGATE_WORKER_CONCURRENCY",
        "prefetch_multiplier": "FACEGATE_PREFETCH_MULTIPLIER",
        "visibility_timeout_s": "FACEGATE_VISIBILITY_TIMEOUT_S",
    }

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def _common_from(cls, env: _Env) -> dict[str, Any]:
        mode = env.get("FACEGATE_ENV", _str, "development", choices=ENVIRONMENTS)
        prod = mode == "production"
        redis_url = _check_redis_url(
            "FACEGATE_REDIS_URL", env.get("FACEGATE_REDIS_URL", _str, cls.redis_url)
        )
        broker_url = _check_redis_url(
            "FACEGATE_BROKER_URL",
            env.get("FACEGATE_BROKER_URL", _str, _default_broker(redis_url)),
        )
        bucket = env.get("FACEGATE_BUCKET", _str, "facegate-uploads")
        if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-" for c in bucket):
            raise ConfigError(f"FACEGATE_BUCKET={bucket!r}: not a valid S3 bucket name")
        if bucket != bucket.lower():
            raise ConfigError(f"FACEGATE_BUCKET={bucket!r}: bucket names are lower case")
        return {
            "env": mode,
            "redis_url": redis_url,
            "broker_url": broker_url,
            "s3_endpoint": _check_endpoint(
                "FACEGATE_S3_ENDPOINT", env.get("FACEGATE_S3_ENDPOINT", _str, "127.0.0.1:18333")
            ),
            "s3_access_key": env.secret(
                "FACEGATE_S3_ACCESS_KEY", prod, DEV_S3_ACCESS_KEY, min_length=3
            ),
            "s3_secret_key": env.secret("FACEGATE_S3_SECRET_KEY", prod, DEV_S3_SECRET_KEY),
            "s3_secure": env.get("FACEGATE_S3_SECURE", _bool, False),
            "bucket": bucket,
            "signing_secret": env.secret("FACEGATE_SIGNING_SECRET", prod, DEV_SIGNING_SECRET),
            "log_level": env.get(
                "FACEGATE_LOG_LEVEL",
                lambda t: t.strip().upper(),
                "INFO",
                choices=("DEBUG", "INFO", "WARNING", "ERROR"),
            ),
            "worker_concurrency": env.get("FACEGATE_WORKER_CONCURRENCY", _int, 0, low=0, high=256),
            "prefetch_multiplier": env.get(
                "FACEGATE_PREFETCH_MULTIPLIER", _int, 1, low=1, high=1024
            ),
            "visibility_timeout_s": env.get(
                "FACEGATE_VISIBILITY_TIMEOUT_S", _int, 60, low=10, high=86400
            ),
        }

    @classmethod
    def _own_from(cls, env: _Env, common: dict[str, Any]) -> dict[str, Any]:
        return {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate the settings; ``environ`` defaults to ``os.environ``."""
        env = _Env(os.environ if environ is None else environ)
        common = cls._common_from(env)
        return cls(**common, **cls._own_from(env, common))

    def describe(self) -> dict[str, str]:
        """``{VARIABLE: value}`` of every setting, secrets masked."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            name = self.ENV_NAMES.get(f.name, f.name)
            value = getattr(self, f.name)
            if f.name in self.SECRETS:
                out[name] = mask(str(value))
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            else:
                out[name] = "" if value is None else str(value)
        return out

    def describe_text(self) -> str:
        """``describe()`` as ``VARIABLE=value`` lines, for ``--check-config``."""
        return "\n".join(f"{k}={v}" for k, v in sorted(self.describe().items()))


def mask(secret: str) -> str:
    """``****`` plus the length: enough to tell two secrets apart, nothing more."""
    return f"**** ({len(secret)} chars)" if secret else "(empty)"


@dataclass(frozen=True, kw_only=True)
class IngestSettings(CommonSettings):
    """The ingest HTTP service."""

    host: str = "127.0.0.1"
    port: int = 18700
    webhook_token: str = DEV_WEBHOOK_TOKEN
    camera_token: str = DEV_CAMERA_TOKEN
    presign_expiry_s: int = 60
    notifications: str = "seaweedfs"
    s3_public_endpoint: str = "127.0.0.1:18333"
    max_upload_bytes: int = 10 * 1024 * 1024

    SECRETS: ClassVar[frozenset[str]] = CommonSettings.SECRETS | {
        "webhook_token",
        "camera_token",
    }
    ENV_NAMES: ClassVar[dict[str, str]] = {
        **CommonSettings.ENV_NAMES,
        "host": "FACEGATE_INGEST_HOST",
        "port": "FACEGATE_INGEST_PORT",
        "webhook_token": "FACEGATE_WEBHOOK_TOKEN",
        "camera_token": "FACEGATE_CAMERA_TOKEN",
        "presign_expiry_s": "FACEGATE_PRESIGN_EXPIRY_S",
        "notifications": "FACEGATE_NOTIFICATIONS",
        "s3_public_endpoint": "FACEGATE_S3_PUBLIC_ENDPOINT",
        "max_upload_bytes": "FACEGATE_MAX_UPLOAD_BYTES",
    }

    @classmethod
    def _own_from(cls, env: _Env, common: dict[str, Any]) -> dict[str, Any]:
        prod = common["env"] == "production"
        return {
            "host": env.get("FACEGATE_INGEST_HOST", _str, "127.0.0.1"),
            "port": env.get("FACEGATE_INGEST_PORT", _int, 18700, low=1, high=65535),
            "webhook_token": env.secret("FACEGATE_WEBHOOK_TOKEN", prod, DEV_WEBHOOK_TOKEN),
            "camera_token": env.secret("FACEGATE_CAMERA_TOKEN", prod, DEV_CAMERA_TOKEN),
            "presign_expiry_s": env.get("FACEGATE_PRESIGN_EXPIRY_S", _int, 60, low=5, high=3600),
            "notifications": env.get(
                "FACEGATE_NOTIFICATIONS", _str, "seaweedfs", choices=NOTIFICATION_MODES
            ),
            "s3_public_endpoint": _check_endpoint(
                "FACEGATE_S3_PUBLIC_ENDPOINT",
                env.get("FACEGATE_S3_PUBLIC_ENDPOINT", _str, common["s3_endpoint"]),
            ),
            "max_upload_bytes": env.get(
                "FACEGATE_MAX_UPLOAD_BYTES", _int, 10 * 1024 * 1024, low=1024, high=100 * 2**20
            ),
        }


@dataclass(frozen=True, kw_only=True)
class EncoderSettings(CommonSettings):
    """The encoder worker (TensorFlow model, micro-batching)."""

    batch_size: int = 16
    batch_wait_ms: int = 15
    model_cache: Path | None = None
    """``None``: the engine's own user cache directory."""
    probe_ttl_s: int = 3600
    max_image_bytes: int = 10 * 1024 * 1024
    deadline_s: float = 10.0
    """Access uploads older than this when their batch starts are not
    encoded: they go to the matcher as ``timeout`` (the matcher's rule, applied
    early so an overloaded encoder spends its time on fresh uploads)."""

    ENV_NAMES: ClassVar[dict[str, str]] = {
        **CommonSettings.ENV_NAMES,
        "deadline_s": "FACEGATE_DEADLINE_S",
        "batch_size": "FACEGATE_BATCH_SIZE",
        "batch_wait_ms": "FACEGATE_BATCH_WAIT_MS",
        "model_cache": "FACEGATE_MODEL_CACHE",
        "probe_ttl_s": "FACEGATE_PROBE_TTL_S",
        "max_image_bytes": "FACEGATE_MAX_IMAGE_BYTES",
    }

    @classmethod
    def _own_from(cls, env: _Env, common: dict[str, Any]) -> dict[str, Any]:
        return {
            "batch_size": env.get("FACEGATE_BATCH_SIZE", _int, 16, low=1, high=256),
            "batch_wait_ms": env.get("FACEGATE_BATCH_WAIT_MS", _int, 15, low=0, high=5000),
            "model_cache": env.get("FACEGATE_MODEL_CACHE", _path, None),
            "probe_ttl_s": env.get("FACEGATE_PROBE_TTL_S", _int, 3600, low=10, high=7 * 86400),
            "max_image_bytes": env.get(
                "FACEGATE_MAX_IMAGE_BYTES", _int, 10 * 1024 * 1024, low=1024, high=100 * 2**20
            ),
            "deadline_s": env.get("FACEGATE_DEADLINE_S", _float, 10.0, low=0.1, high=3600.0),
        }


@dataclass(frozen=True, kw_only=True)
class MatcherSettings(CommonSettings):
    """The matcher worker (policy, gallery, signed events)."""

    threshold: float = 0.6
    margin: float = 0.0
    event_ttl_s: int = 30
    deadline_s: float = 10.0
    stream_maxlen: int = 10000

    ENV_NAMES: ClassVar[dict[str, str]] = {
        **CommonSettings.ENV_NAMES,
        "threshold": "FACEGATE_THRESHOLD",
        "margin": "FACEGATE_MARGIN",
        "event_ttl_s": "FACEGATE_EVENT_TTL_S",
        "deadline_s": "FACEGATE_DEADLINE_S",
        "stream_maxlen": "FACEGATE_STREAM_MAXLEN",
    }

    @classmethod
    def _own_from(cls, env: _Env, common: dict[str, Any]) -> dict[str, Any]:
        threshold = env.get("FACEGATE_THRESHOLD", _float, 0.6, low=0.0, high=2.0)
        if threshold <= 0.0:
            raise ConfigError("FACEGATE_THRESHOLD must be > 0")
        return {
            "threshold": threshold,
            "margin": env.get("FACEGATE_MARGIN", _float, 0.0, low=0.0, high=1.0),
            "event_ttl_s": env.get("FACEGATE_EVENT_TTL_S", _int, 30, low=1, high=3600),
            "deadline_s": env.get("FACEGATE_DEADLINE_S", _float, 10.0, low=0.1, high=3600.0),
            "stream_maxlen": env.get(
                "FACEGATE_STREAM_MAXLEN", _int, 10000, low=100, high=10_000_000
            ),
        }


__all__ = [
    "CommonSettings",
    "EncoderSettings",
    "IngestSettings",
    "MatcherSettings",
    "mask",
    "placeholder_reason",
]
