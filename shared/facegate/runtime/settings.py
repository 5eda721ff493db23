"""Settings: one frozen object per service, each variable declared once.

::

    settings = MatcherSettings.from_env()                 # os.environ
    settings = MatcherSettings.from_env({"FACEGATE_THRESHOLD": "0.55"})

Every setting is a field of a :class:`Settings` subclass (pydantic-settings):
its name gives the variable (``threshold`` -> ``FACEGATE_THRESHOLD``), its
annotation and ``Field`` give the type, the default and the bounds, and
secrets are :class:`~pydantic.SecretStr` with a :class:`SecretRule`. The
settings every service reads are in :class:`CommonSettings`; a service's own
live with the service (``services/<name>/settings.py``).

Anything wrong raises :class:`~facegate.core.errors.ConfigError` naming the
variable, and so does a ``FACEGATE_*`` variable that no settings class
declares (a misspelt name would otherwise be ignored): the message names the
closest valid one. Every class that declares variables is listed under the
``facegate.settings`` entry point group, so a service also accepts the
variables of the others (one ``.env`` for a whole deployment).

Secrets have no default in any environment: a service started without one
refuses to run (the local stack generates random ones per stack, see
:mod:`facegate.tools.devstack`). With ``FACEGATE_ENV=production`` each must
also be at least 32 characters, must not look like a placeholder (``change-me``,
``minioadmin``...), and no two secrets may share a value. ``describe()``
lists the settings as ``{VARIABLE: value}`` with secrets masked: what
``--check-config`` prints.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from facegate.core.errors import ConfigError
from facegate.runtime.secrets import (
    SecretRule,
    mask,
    placeholder_reason,
    reused_secrets,
)

ENV_PREFIX = "FACEGATE_"
ENTRY_POINT_GROUP = "facegate.settings"

EXTERNAL_VARIABLES = frozenset(
    {
        "FACEGATE_REDIS_PASSWORD",
        "FACEGATE_LOCK_REDIS_PASSWORD",
        "FACEGATE_REDIS_PUBLISH",
        "FACEGATE_INGEST_PUBLISH",
        "FACEGATE_IMAGE_TAG",
        "FACEGATE_MQTT_PUBLISH",
    }
)
"""Variables docker compose interpolates (deploy/.env.example); no Python
code reads them, but a shell that exports them must not upset the CLI."""


# --- value checks (used as AfterValidators) -----------------------------------------


def _redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or (
        parts.scheme != "unix" and not parts.hostname
    ):
        raise ValueError("want redis://host:port/db")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError("bad port") from exc
    return url


def _endpoint(endpoint: str) -> str:
    """``host:port`` without a scheme, as the minio SDK wants it."""
    if "://" in endpoint or "/" in endpoint or not endpoint:
        raise ValueError("want host:port without scheme or path")
    host, _, port = endpoint.rpartition(":")
    if port and host and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError("bad port")
    return endpoint


def _bucket(bucket: str) -> str:
    if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-" for c in bucket):
        raise ValueError("not a valid S3 bucket name")
    if bucket != bucket.lower():
        raise ValueError("bucket names are lower case")
    return bucket


def _expand(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser()


RedisUrl = Annotated[str, AfterValidator(_redis_url)]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
Bucket = Annotated[str, AfterValidator(_bucket)]
OptionalPath = Annotated[Path | None, AfterValidator(_expand)]


def _default_broker(redis_url: str) -> str:
    """The Redis URL with database 1 (data in 0, Celery's queues in 1)."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, "/1", parts.query, parts.fragment))


# --- reading a given mapping instead of os.environ -------------------------------------

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("facegate_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source over the mapping ``from_env``
    was given (``os.environ`` otherwise)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        source = os.environ if environ is None else environ
        # an empty or blank variable counts as unset (``env_ignore_empty``), so
        # ``FACEGATE_SIGNING_SECRET=`` is "missing", never an empty secret
        return {
            k.lower(): v
            for k, v in source.items()
            if k.upper().startswith(ENV_PREFIX) and v is not None and v.strip()
        }


@contextmanager
def _reading(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


# --- the base class --------------------------------------------------------------


class Settings(BaseSettings):
    """Base of every settings class: ``FACEGATE_<FIELD>`` variables, frozen,
    validated; unknown fields and unknown ``FACEGATE_*`` variables refused."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        env_ignore_empty=True,
        allow_inf_nan=False,
        str_strip_whitespace=True,
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvironSource(settings_cls))

    @classmethod
    def env_name(cls, field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """``{field: VARIABLE}`` of every setting of this class."""
        return {name: cls.env_name(name) for name in cls.model_fields}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate; ``environ`` defaults to ``os.environ``."""
        env = os.environ if environ is None else environ
        check_known(env)
        with _reading(env):
            try:
                return cls()
            except ValidationError as exc:
                raise ConfigError(_explain(cls, exc)) from exc

    @classmethod
    def secret_fields(cls) -> dict[str, SecretRule]:
        return {
            name: rule
            for name, info in cls.model_fields.items()
            for rule in info.metadata
            if isinstance(rule, SecretRule)
        }

    def describe(self) -> dict[str, str]:
        """``{VARIABLE: value}`` of every setting, secrets masked."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = mask(value.get_secret_value())
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = "" if value is None else _mask_userinfo(str(value))
            out[self.env_name(name)] = text
        return out

    def describe_text(self) -> str:
        """``describe()`` as ``VARIABLE=value`` lines, for ``--check-config``."""
        return "\n".join(f"{k}={v}" for k, v in sorted(self.describe().items()))


def _mask_userinfo(text: str) -> str:
    """A URL's password masked (``redis://:pw@host`` -> ``redis://:***@host``);
    any other text unchanged."""
    if "://" not in text or "@" not in text:
        return text
    parts = urlsplit(text)
    if parts.password is None:
        return text
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def _explain(cls: type[Settings], exc: ValidationError) -> str:
    """One line per problem, each naming the variable and the value given."""
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        name = cls.env_name(field) if field in cls.model_fields else field or "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        value = error.get("input")
        shown = "" if isinstance(value, dict | SecretStr) or value is None else f"={value!r}"
        if field in cls.secret_fields():
            shown = ""
            if error.get("type") == "missing":
                message = (
                    "must be set (a random value of 32+ characters; the local stack's "
                    "are printed by `facegate stack env`)"
                )
        lines.append(f"{name}{shown}: {message}")
    return "; ".join(lines)


# --- every variable any settings class declares ----------------------------------------


@cache
def settings_classes() -> tuple[type[Settings], ...]:
    """The settings classes registered under the ``facegate.settings`` entry
    points (the installed distribution's services, tools and tests)."""
    found: list[type[Settings]] = [CommonSettings]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if isinstance(cls, type) and issubclass(cls, Settings) and cls not in found:
            found.append(cls)
    return tuple(found)


def known_variables() -> frozenset[str]:
    names = {n for cls in settings_classes() for n in cls.env_names().values()}
    return frozenset(names | EXTERNAL_VARIABLES)


def check_known(environ: Mapping[str, str]) -> None:
    """ConfigError when ``environ`` holds a ``FACEGATE_*`` variable that no
    settings class declares, naming the closest valid one."""
    known = known_variables()
    unknown = sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k not in known)
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        parts.append(f"{name} is not a facegate setting{hint}")
    raise ConfigError("; ".join(parts))


# --- what every service reads ------------------------------------------------------


class CommonSettings(Settings):
    """What every service reads (docs/DESIGN.md, "Settings")."""

    env: Literal["development", "production"] = "development"
    redis_url: RedisUrl = "redis://127.0.0.1:6390/0"
    broker_url: RedisUrl = Field(
        "redis://127.0.0.1:6390/1", description="default: the Redis URL with database 1"
    )
    s3_endpoint: Endpoint = "127.0.0.1:18333"
    s3_access_key: Annotated[SecretStr, SecretRule()]
    s3_secret_key: Annotated[SecretStr, SecretRule()]
    s3_secure: bool = False
    bucket: Bucket = "facegate-uploads"
    signing_secret: Annotated[SecretStr, SecretRule()]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_host: str = Field(
        "127.0.0.1", description="where the workers' /metrics, /healthz, /readyz listen"
    )
    worker_concurrency: int = Field(0, ge=0, le=256, description="0 = the service's default")
    prefetch_multiplier: int = Field(1, ge=1, le=1024)
    visibility_timeout_s: int = Field(60, ge=10, le=86400)
    deadline_s: float = Field(
        10.0,
        ge=0.1,
        le=3600.0,
        description="an access upload older than this is denied with timeout (the encoder "
        "skips it without encoding)",
    )
    clock_skew_s: float = Field(
        2.0,
        ge=0.0,
        le=60.0,
        description="how far the object store's clock may run ahead of the services': an "
        "upload written further in the future is denied with timeout",
    )

    SERVICE: ClassVar[str] = "common"

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if isinstance(data.get("log_level"), str):
                data["log_level"] = data["log_level"].strip().upper()
            if not data.get("broker_url"):
                redis_url = data.get("redis_url") or cls.model_fields["redis_url"].default
                data["broker_url"] = _default_broker(str(redis_url))
        return data

    @model_validator(mode="after")
    def _production_secrets(self) -> Self:
        if not self.production:
            return self
        problems = []
        values: dict[str, str] = {}
        for name, rule in self.secret_fields().items():
            variable = self.env_name(name)
            value: SecretStr = getattr(self, name)
            values[variable] = value.get_secret_value()
            reason = placeholder_reason(values[variable], min_length=rule.min_length)
            if reason:
                problems.append(f"{variable} {reason}; refused when FACEGATE_ENV=production")
        for first, second in reused_secrets(values):
            problems.append(
                f"{first} and {second} have the same value; every secret must be its own "
                "when FACEGATE_ENV=production"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def production(self) -> bool:
        return self.env == "production"


__all__ = [
    "CommonSettings",
    "Endpoint",
    "OptionalPath",
    "RedisUrl",
    "SecretRule",
    "Settings",
    "check_known",
    "known_variables",
    "mask",
    "placeholder_reason",
    "settings_classes",
]
