"""What each process of the local stack runs, and how to tell it is ready.

Owns :class:`_Spec` (argv, working directory, the command-line marker that
proves a pid is ours, the readiness probe), the command lines of
``redis-server`` and ``weed mini``, the files ``weed`` reads at start
(``s3.json``: the stack's S3 credentials; ``security.toml``: the JWT keys
that close the filer's and the volume server's HTTP APIs;
``notification.toml``: filer events to ingest's webhook) and the readiness
probes of Redis and of the S3 API.
:class:`~facegate.tools.devstack.stack.Stack` puts them together.

What a local attacker (any process on the machine) can reach, and why it
cannot write an upload: every port listens on 127.0.0.1 only; S3 checks
signatures (the credentials are in ``s3.json``, mode 0600); the filer's HTTP
API accepts reads and writes only with a JWT signed by a key from
``security.toml`` (0600, random per start), which the S3 gateway holds and
nobody else; the volume servers likewise need a JWT from the master for
each write and read; the gRPC ports (where the filer's ``CreateEntry``
needs no credential at all) require a client certificate signed by a CA
made at each start (:mod:`~facegate.tools.devstack.weed_tls`); WebDAV and
the admin UI are off.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from facegate.core.errors import FacegateError
from facegate.tools.devstack.config import GRPC_OFFSET, HOST, StackConfig
from facegate.tools.devstack.processes import (
    _port_open,
    _write_private,
    find_redis_server,
    find_weed,
)
from facegate.tools.devstack.weed_tls import write_grpc_tls

log = logging.getLogger("facegate.tools.devstack")
"""The package's logger (``facegate stack up`` sets it to INFO)."""

__all__ = [
    "WEED_JWT_KEYS",
    "redis_argv",
    "redis_ready",
    "s3_ready",
    "weed_argv",
    "write_weed_config",
]

WEED_JWT_KEYS = (
    "jwt.signing",
    "jwt.signing.read",
    "jwt.filer_signing",
    "jwt.filer_signing.read",
)
"""The ``security.toml`` sections whose keys gate HTTP writes and reads:
volume servers (signed by the master) and the filer (signed by the S3 gateway)."""


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


def redis_argv(config: StackConfig, work: Path) -> list[str]:
    """``redis-server`` on ``HOST:config.redis_port``, durable in ``work``:
    the append-only file, fsynced every second (a crash loses at most the
    last second of writes; a clean stop loses nothing). No RDB snapshots:
    the AOF is the one copy, rewritten by Redis as it grows."""
    return [
        find_redis_server(),
        "--port",
        str(config.redis_port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--dir",
        str(work),
        "--logfile",
        "",
    ]


def weed_argv(config: StackConfig, work: Path) -> list[str]:
    """``weed mini`` in ``work`` with every port explicit."""
    argv = [
        find_weed(),
        "mini",
        f"-dir={work / 'data'}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={config.master_port}",
        f"-master.port.grpc={config.master_port + GRPC_OFFSET}",
        f"-volume.port={config.volume_port}",
        f"-volume.port.grpc={config.volume_port + GRPC_OFFSET}",
        f"-filer.port={config.filer_port}",
        f"-filer.port.grpc={config.filer_port + GRPC_OFFSET}",
        f"-s3.port={config.s3_port}",
        f"-s3.port.grpc={config.s3_port + GRPC_OFFSET}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={work / 's3.json'}",
        f"-admin.port={config.weed_admin_port}",
        f"-admin.port.grpc={config.weed_admin_port + GRPC_OFFSET}",
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


def write_weed_config(config: StackConfig, work: Path, env: Mapping[str, str]) -> None:
    """``work/data``, ``s3.json`` and ``notification.toml`` for ``weed mini``
    (``env``: the stack's ``FACEGATE_*`` variables)."""
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
    keys = {name: secrets.token_urlsafe(32) for name in WEED_JWT_KEYS}
    _write_private(
        work / "security.toml",
        "# generated by facegate stack at each start: random JWT keys and gRPC\n"
        "# certificates, known only to weed\n"
        + "".join(f'[{section}]\nkey = "{keys[section]}"\n' for section in WEED_JWT_KEYS)
        + "[access]\nui = false\n"
        + "[filer.expose_directory_metadata]\nenabled = false\n"
        + (write_grpc_tls(work) or ""),
    )
    # The token travels as `Authorization: Bearer` (weed 4.48's `bearer_token`),
    # never in the URL: weed logs the URL of every webhook call that fails.
    _write_private(
        work / "notification.toml",
        "# generated by facegate stack: filer events -> ingest\n"
        "[notification.webhook]\n"
        "enabled = true\n"
        f'endpoint = "{config.ingest_url}/v1/events"\n'
        f'bearer_token = "{env["FACEGATE_WEBHOOK_TOKEN"]}"\n'
        "timeout_seconds = 5\n"
        'event_types = ["create"]\n'
        f'path_prefixes = ["/buckets/{config.bucket}/uploads/"]\n',
    )


def redis_ready(config: StackConfig) -> bool:
    """Redis answers PING."""
    import redis

    client = redis.Redis(
        host=HOST, port=config.redis_port, socket_timeout=1.0, socket_connect_timeout=1.0
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def s3_ready(config: StackConfig, env: Callable[[], dict[str, str]]) -> bool:
    """The S3 API answers and the uploads bucket exists (created if need be);
    ``env`` gives the stack's ``FACEGATE_*`` variables (asked for only once
    the port accepts connections)."""
    from facegate.adapters.objectstore import MinioObjectStore
    from facegate.runtime.settings import CommonSettings

    if not _port_open(config.s3_port):
        return False
    settings = CommonSettings.from_env(env())
    try:
        MinioObjectStore(settings).ensure_bucket()
    except FacegateError as exc:
        log.debug("S3 not ready yet: %s", exc)
        return False
    return True
