"""The configuration of one local stack: ports, directories, services.

Owns the stack's constants (the checkout :data:`ROOT`, the default state
directory, the service names, the loopback :data:`HOST`, the SeaweedFS gRPC
port offset, the names of the generated dev secrets) and
:class:`StackConfig`, with its port checks and the URLs derived from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from facegate.core.errors import ConfigError

__all__ = [
    "DEFAULT_STATE_DIR",
    "GRPC_OFFSET",
    "HOST",
    "INFRA",
    "ROOT",
    "SECRET_NAMES",
    "SERVICE_NAMES",
    "WORKERS",
    "StackConfig",
]

ROOT = Path(__file__).resolve().parents[4]
"""The checkout (``services`` is importable from here)."""

DEFAULT_STATE_DIR = ROOT / "var" / "stack"
SERVICE_NAMES = ("redis", "seaweedfs", "ingest", "encoder", "matcher", "console")
INFRA = ("redis", "seaweedfs")
WORKERS = ("encoder", "matcher")
HOST = "127.0.0.1"
GRPC_OFFSET = 10000
"""SeaweedFS gRPC ports are the HTTP port + 10000 (set explicitly, not implied)."""

SECRET_NAMES = (
    "FACEGATE_S3_ACCESS_KEY",
    "FACEGATE_S3_SECRET_KEY",
    "FACEGATE_SIGNING_SECRET",
    "FACEGATE_WEBHOOK_TOKEN",
    "FACEGATE_CAMERA_TOKEN",
)


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Ports, directories and which services make up one local stack."""

    state_dir: Path = DEFAULT_STATE_DIR
    redis_port: int = 6390
    s3_port: int = 18333
    master_port: int = 19333
    volume_port: int = 18080
    filer_port: int = 18888
    weed_admin_port: int = 18646
    ingest_port: int = 18700
    console_port: int = 18710
    encoder_metrics_port: int = 18711
    """encoder-n serves /metrics, /healthz, /readyz on this + n - 1 (matchers likewise)."""
    matcher_metrics_port: int = 18721
    services: tuple[str, ...] = SERVICE_NAMES
    encoders: int = 1
    matchers: int = 1
    bucket: str = "facegate-uploads"
    redis_db: int = 0
    broker_db: int = 1
    ready_timeout_s: float = 60.0
    """Bound on each readiness wait (a worker that loads a model needs the most)."""
    stop_timeout_s: float = 10.0
    """SIGTERM, then SIGKILL after this long."""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """More FACEGATE_* settings for the services (batch size, threshold...)."""
    mqtt_url: str | None = None
    """The broker of the MQTT bridge, which runs only when this is set
    (``facegate stack up`` takes ``FACEGATE_MQTT_URL``; :mod:`~facegate.tools.devstack.mqtt`)."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.services if s not in SERVICE_NAMES]
        if unknown:
            raise ConfigError(
                f"unknown stack service(s) {', '.join(unknown)}; "
                f"choose from {', '.join(SERVICE_NAMES)}"
            )
        ports = self.ports()
        for name, port in ports.items():
            if not 1024 <= port <= 65535 - GRPC_OFFSET or port in (6379,):
                raise ConfigError(f"stack port {name}={port} out of range")
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"stack ports collide: {ports}")
        if self.encoders < 0 or self.matchers < 0:
            raise ConfigError("worker counts must be >= 0")
        taken = set(ports.values()) | {p + GRPC_OFFSET for p in ports.values()}
        sidecars = list(self.sidecar_ports().values())
        if len(set(sidecars)) != len(sidecars) or taken.intersection(sidecars):
            raise ConfigError(f"the workers' metrics ports collide: {self.sidecar_ports()}")

    @classmethod
    def default(cls, state_dir: Path | None = None, **over: object) -> StackConfig:
        """The development stack of docs/DESIGN.md (Redis 6390, S3 18333...)."""
        cfg = cls(state_dir=state_dir or DEFAULT_STATE_DIR)
        return replace(cfg, **over) if over else cfg  # type: ignore[arg-type]

    @classmethod
    def for_tests(cls, base_port: int, state_dir: Path, **over: object) -> StackConfig:
        """A separate set of ports ``base_port .. base_port + 7`` (tests use
        26300; the console at + 7), the workers' metrics from ``base_port + 10``
        (encoders) and ``+ 20`` (matchers)."""
        return cls(
            state_dir=state_dir,
            redis_port=base_port,
            s3_port=base_port + 1,
            master_port=base_port + 2,
            volume_port=base_port + 3,
            filer_port=base_port + 4,
            weed_admin_port=base_port + 5,
            ingest_port=base_port + 6,
            console_port=base_port + 7,
            encoder_metrics_port=base_port + 10,
            matcher_metrics_port=base_port + 20,
            **over,  # type: ignore[arg-type]
        )

    def ports(self) -> dict[str, int]:
        return {
            "redis": self.redis_port,
            "s3": self.s3_port,
            "master": self.master_port,
            "volume": self.volume_port,
            "filer": self.filer_port,
            "weed_admin": self.weed_admin_port,
            "ingest": self.ingest_port,
            "console": self.console_port,
        }

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/{self.redis_db}"

    @property
    def broker_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/{self.broker_db}"

    @property
    def s3_endpoint(self) -> str:
        return f"{HOST}:{self.s3_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://{HOST}:{self.ingest_port}"

    @property
    def console_url(self) -> str:
        return f"http://{HOST}:{self.console_port}"

    def console_env(self) -> dict[str, str]:
        """The console's address as the stack hands it to services and clients."""
        return {
            "FACEGATE_CONSOLE_HOST": HOST,
            "FACEGATE_CONSOLE_PORT": str(self.console_port),
            "FACEGATE_CONSOLE_URL": self.console_url,
        }
    def metrics_port(self, process: str) -> int | None:
        """The metrics port of ``encoder-n``/``matcher-n`` (``None``: another process)."""
        service, _, n = process.partition("-")
        base = {"encoder": self.encoder_metrics_port, "matcher": self.matcher_metrics_port}
        if service not in base or not n.isdigit():
            return None
        return base[service] + int(n) - 1

    def process_env(self, process: str) -> dict[str, str]:
        """The variables one process gets beyond the stack's (its metrics port)."""
        port = self.metrics_port(process)
        if port is None:
            return {}
        return {f"FACEGATE_{process.partition('-')[0].upper()}_METRICS_PORT": str(port)}

    def sidecar_ports(self) -> dict[str, int]:
        """The metrics port of each worker process of this stack."""
        out: dict[str, int] = {}
        for service, count in (("encoder", self.encoders), ("matcher", self.matchers)):
            if service in self.services:
                for n in range(1, count + 1):
                    out[f"{service}-{n}"] = self.metrics_port(f"{service}-{n}") or 0
        return out

    def metrics_urls(self) -> dict[str, str]:
        """Every ``/metrics`` of the stack, by process: ingest's, then each worker's."""
        urls = {"ingest": f"{self.ingest_url}/metrics"} if "ingest" in self.services else {}
        urls.update({name: f"http://{HOST}:{port}/metrics"
                     for name, port in self.sidecar_ports().items()})
        return urls
