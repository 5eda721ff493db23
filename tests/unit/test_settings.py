"""Settings: defaults, parsing, bounds, production secrets (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from secrets_env import TEST_SECRETS, with_secrets

from facegate.core.errors import ConfigError
from facegate.runtime.settings import CommonSettings, placeholder_reason
from services.encoder.settings import EncoderSettings
from services.ingest.settings import IngestSettings
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit

STRONG = {
    "FACEGATE_ENV": "production",
    "FACEGATE_S3_ACCESS_KEY": "facegate-prod-Jk4Lm7Nb2Vc5Xz8Qa1Ws3",
    "FACEGATE_S3_SECRET_KEY": "q8Zr2Lw9Xv4Tn7Kp1Ys6Hb3Gf5Dc8Ve2Rt",
    "FACEGATE_SIGNING_SECRET": "d4F9s8A7g6H5j4K3l2Z1x0Cv9Bn8Mq7Wp",
    "FACEGATE_WEBHOOK_TOKEN": "Wb7Hk2Lq9Zx4Mn8Pr3Ts6Yu1Io5Pa2Sd9F",
    "FACEGATE_CAMERA_TOKEN": "Cm5Rt8Yu1Io4Pa7Sd0Fg3Hj6Kl9Zx2Cv5B",
}
SECRET_VARIABLES = sorted(TEST_SECRETS)


def test_development_defaults_follow_design() -> None:
    s = MatcherSettings.from_env(with_secrets())
    assert s.env == "development"
    assert s.redis_url == "redis://127.0.0.1:6390/0"
    assert s.broker_url == "redis://127.0.0.1:6390/1"
    assert s.s3_endpoint == "127.0.0.1:18333"
    assert s.s3_secure is False
    assert s.bucket == "facegate-uploads"
    assert (s.threshold, s.margin, s.event_ttl_s, s.deadline_s) == (0.6, 0.1, 30, 10.0)
    assert s.visibility_timeout_s == 60
    i = IngestSettings.from_env(with_secrets())
    assert (i.ingest_host, i.ingest_port, i.presign_expiry_s, i.notifications) == (
        "127.0.0.1",
        18700,
        60,
        "seaweedfs",
    )
    assert i.s3_public_endpoint == i.s3_endpoint
    e = EncoderSettings.from_env(with_secrets())
    assert (e.batch_size, e.batch_wait_ms, e.probe_ttl_s, e.model_cache) == (16, 15, 3600, None)
    assert s.clock_skew_s == 2.0


@pytest.mark.parametrize("name", SECRET_VARIABLES)
@pytest.mark.parametrize("environment", ["development", "production"])
def test_no_secret_has_a_default(name: str, environment: str) -> None:
    """A missing secret is refused in every environment, naming the variable."""
    env = {**(STRONG if environment == "production" else TEST_SECRETS), "FACEGATE_ENV": environment}
    del env[name]
    with pytest.raises(ConfigError, match=f"{name}: must be set"):
        IngestSettings.from_env(env)
    with pytest.raises(ConfigError, match=f"{name}: must be set"):
        IngestSettings.from_env({**env, name: ""})


def test_the_code_holds_no_secret_default() -> None:
    for cls in (CommonSettings, IngestSettings, MatcherSettings, EncoderSettings):
        for name in cls.secret_fields():
            assert cls.model_fields[name].is_required(), f"{cls.__name__}.{name} has a default"


def test_values_are_parsed() -> None:
    env = {
        "FACEGATE_REDIS_URL": "redis://redis:6379/3",
        "FACEGATE_S3_SECURE": "yes",
        "FACEGATE_THRESHOLD": "0.55",
        "FACEGATE_MARGIN": " 0.05 ",
        "FACEGATE_BATCH_SIZE": "32",
        "FACEGATE_MODEL_CACHE": "/tmp/models",
        "FACEGATE_S3_PUBLIC_ENDPOINT": "cams.example.org:9000",
        "FACEGATE_NOTIFICATIONS": "minio",
    }
    env = with_secrets(env)
    m = MatcherSettings.from_env(env)
    assert m.broker_url == "redis://redis:6379/1"
    assert m.s3_secure is True
    assert (m.threshold, m.margin) == (0.55, 0.05)
    assert EncoderSettings.from_env(env).model_cache == Path("/tmp/models")
    assert EncoderSettings.from_env(env).batch_size == 32
    ingest = IngestSettings.from_env(env)
    assert ingest.s3_public_endpoint == "cams.example.org:9000"
    assert ingest.notifications == "minio"
    explicit = CommonSettings.from_env(with_secrets(broker_url="redis://other:1/5"))
    assert explicit.broker_url == "redis://other:1/5"


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (MatcherSettings, "FACEGATE_THRESHOLD", "0"),
        (MatcherSettings, "FACEGATE_THRESHOLD", "2.5"),
        (MatcherSettings, "FACEGATE_THRESHOLD", "nan"),
        (MatcherSettings, "FACEGATE_THRESHOLD", "abc"),
        (MatcherSettings, "FACEGATE_MARGIN", "-0.1"),
        (MatcherSettings, "FACEGATE_EVENT_TTL_S", "0"),
        (MatcherSettings, "FACEGATE_DEADLINE_S", "0"),
        (IngestSettings, "FACEGATE_INGEST_PORT", "70000"),
        (IngestSettings, "FACEGATE_PRESIGN_EXPIRY_S", "1"),
        (IngestSettings, "FACEGATE_NOTIFICATIONS", "kafka"),
        (IngestSettings, "FACEGATE_S3_PUBLIC_ENDPOINT", "http://x:9000"),
        (EncoderSettings, "FACEGATE_BATCH_SIZE", "0"),
        (EncoderSettings, "FACEGATE_BATCH_SIZE", "1000"),
        (EncoderSettings, "FACEGATE_BATCH_WAIT_MS", "-1"),
        (CommonSettings, "FACEGATE_ENV", "staging"),
        (CommonSettings, "FACEGATE_REDIS_URL", "http://x"),
        (CommonSettings, "FACEGATE_S3_ENDPOINT", "http://x:9000"),
        (CommonSettings, "FACEGATE_S3_SECURE", "maybe"),
        (CommonSettings, "FACEGATE_BUCKET", "Upper_Case"),
        (CommonSettings, "FACEGATE_VISIBILITY_TIMEOUT_S", "1"),
    ],
)
def test_bounds_and_formats(cls: type[CommonSettings], name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        cls.from_env(with_secrets({name: value}))


def test_production_accepts_strong_secrets() -> None:
    s = IngestSettings.from_env(STRONG)
    assert s.production
    assert s.camera_token.get_secret_value() == STRONG["FACEGATE_CAMERA_TOKEN"]


@pytest.mark.parametrize(
    "name",
    [
        "FACEGATE_S3_ACCESS_KEY",
        "FACEGATE_S3_SECRET_KEY",
        "FACEGATE_SIGNING_SECRET",
        "FACEGATE_WEBHOOK_TOKEN",
        "FACEGATE_CAMERA_TOKEN",
    ],
)
def test_production_refuses_missing_secrets(name: str) -> None:
    env = {k: v for k, v in STRONG.items() if k != name}
    with pytest.raises(ConfigError, match=name):
        IngestSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FACEGATE_SIGNING_SECRET", "change-me"),
        ("FACEGATE_SIGNING_SECRET", "CHANGEME"),
        ("FACEGATE_SIGNING_SECRET", "please-change-me-now-1234"),
        ("FACEGATE_SIGNING_SECRET", "short-Secret1"),
        ("FACEGATE_SIGNING_SECRET", "d4F9s8A7g6H5j4K3l2Z1x0Cv9Bn8Mq7"),  # 31 characters
        ("FACEGATE_S3_ACCESS_KEY", "abc"),
        ("FACEGATE_SIGNING_SECRET", "ab" * 20),
        ("FACEGATE_SIGNING_SECRET", "facegate-dev-signing-secret-not-for-production"),
        ("FACEGATE_S3_SECRET_KEY", "minioadmin"),
        ("FACEGATE_S3_SECRET_KEY", "password"),
        ("FACEGATE_S3_ACCESS_KEY", "minioadmin"),
        ("FACEGATE_CAMERA_TOKEN", "secret"),
        ("FACEGATE_WEBHOOK_TOKEN", "   "),
    ],
)
def test_production_refuses_placeholders(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        IngestSettings.from_env({**STRONG, name: value})


@pytest.mark.parametrize("other", [n for n in SECRET_VARIABLES if n != "FACEGATE_SIGNING_SECRET"])
def test_production_refuses_one_value_for_two_secrets(other: str) -> None:
    env = {**STRONG, other: STRONG["FACEGATE_SIGNING_SECRET"]}
    with pytest.raises(ConfigError, match="same value") as info:
        IngestSettings.from_env(env)
    assert other in str(info.value) and "FACEGATE_SIGNING_SECRET" in str(info.value)
    assert STRONG["FACEGATE_SIGNING_SECRET"] not in str(info.value)


def test_development_accepts_weak_values() -> None:
    s = MatcherSettings.from_env(with_secrets(signing_secret="secret"))
    assert s.signing_secret.get_secret_value() == "secret"


def test_placeholder_reason() -> None:
    assert placeholder_reason("minioadmin") == "is a placeholder"
    assert placeholder_reason("abc") is not None
    assert placeholder_reason("d4F9s8A7g6H5j4K3l2Z1") == "is shorter than 32 characters"
    assert placeholder_reason("d4F9s8A7g6H5j4K3l2Z1x0Cv9Bn8Mq7W") is None


def test_describe_masks_secrets() -> None:
    s = IngestSettings.from_env(STRONG)
    text = s.describe_text()
    for secret in STRONG.values():
        if secret not in ("production", "facegate-prod"):
            assert secret not in text
    described = s.describe()
    assert described["FACEGATE_SIGNING_SECRET"].startswith("****")
    assert described["FACEGATE_INGEST_PORT"] == "18700"
    assert described["FACEGATE_ENV"] == "production"


def test_describe_masks_a_password_in_a_url() -> None:
    env = with_secrets({"FACEGATE_REDIS_URL": "redis://door:hunter2-very-secret@redis.lan:6380/0"})
    described = MatcherSettings.from_env(env).describe()
    assert described["FACEGATE_REDIS_URL"] == "redis://door:***@redis.lan:6380/0"
    plain = MatcherSettings.from_env(with_secrets({"FACEGATE_REDIS_URL": "redis://r:6379/2"}))
    assert plain.describe()["FACEGATE_REDIS_URL"] == "redis://r:6379/2"


def test_settings_are_frozen() -> None:
    s = MatcherSettings.from_env(with_secrets())
    with pytest.raises(ValidationError, match="frozen"):
        s.threshold = 0.9  # type: ignore[misc]


def test_unknown_variable_is_refused_with_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"FACEGATE_TRESHOLD .*did you mean FACEGATE_THRESHOLD\?"):
        MatcherSettings.from_env({"FACEGATE_TRESHOLD": "0.5"})
    with pytest.raises(ConfigError, match="FACEGATE_NO_SUCH_THING is not a facegate setting"):
        IngestSettings.from_env({"FACEGATE_NO_SUCH_THING": "1"})


def test_another_services_variable_is_accepted() -> None:
    """One .env for the whole deployment: the matcher ignores the encoder's batch size."""
    s = MatcherSettings.from_env(with_secrets(batch_size="8", ingest_port="1234"))
    assert not hasattr(s, "batch_size")
    assert MatcherSettings.from_env(with_secrets()).threshold == s.threshold


def test_every_settings_class_is_registered() -> None:
    """A class missing from the entry points would make its variables 'unknown'."""
    import importlib
    import pkgutil

    import facegate
    import services
    from facegate.runtime.settings import Settings, settings_classes

    for package in (facegate, services):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(".settings") or info.name.endswith(".paths"):
                importlib.import_module(info.name)
    declared: set[type[Settings]] = set()
    stack: list[type[Settings]] = [Settings]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.__module__.startswith(("facegate.", "services.")):
                declared.add(sub)
                stack.append(sub)
    registered = set(settings_classes())
    assert declared <= registered, sorted(c.__name__ for c in declared - registered)


def test_each_variable_is_declared_by_one_class_only() -> None:
    """Subclasses inherit, but no two unrelated classes declare the same variable."""
    from facegate.runtime.settings import settings_classes

    owner: dict[str, type] = {}
    for cls in settings_classes():
        for field, variable in cls.env_names().items():
            declaring = next(c for c in cls.__mro__ if field in getattr(c, "__annotations__", {}))
            assert owner.setdefault(variable, declaring) is declaring, variable


def test_env_names_and_describe_agree() -> None:
    names = IngestSettings.env_names()
    assert names["ingest_port"] == "FACEGATE_INGEST_PORT"
    assert names["threshold" if "threshold" in names else "bucket"] == "FACEGATE_BUCKET"
    assert set(IngestSettings.from_env(with_secrets()).describe()) == set(names.values())


def test_secrets_do_not_leak_through_repr() -> None:
    s = IngestSettings.from_env(STRONG)
    assert STRONG["FACEGATE_CAMERA_TOKEN"] not in repr(s)
    assert STRONG["FACEGATE_SIGNING_SECRET"] not in str(s)


def test_an_error_names_the_variable_but_never_a_secret_value() -> None:
    with pytest.raises(ConfigError) as info:
        IngestSettings.from_env({**STRONG, "FACEGATE_CAMERA_TOKEN": "short-Secret1"})
    assert "FACEGATE_CAMERA_TOKEN" in str(info.value)
    assert "short-Secret1" not in str(info.value)
