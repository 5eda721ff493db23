"""The one runner of the Celery services (encoder, matcher).

::

    # services/matcher/__main__.py
    def main(argv=None) -> int:
        return run_worker(MATCHER, argv)

:func:`run_worker` runs a service described by a :class:`WorkerSpec`: after
:func:`~facegate.runtime.entrypoint.start` (``--check-config``, settings,
logging) it builds the service's app in this process (its composition root,
which may load a model: before the first task is consumed, never at import),
builds the Celery app, hands both to the service's ``register(celery, app)``,
writes ``--ready-file`` once Celery says the worker is ready, and closes the
app when the worker stops. Nothing here knows what the service does.

A worker that was ready and then stops on an error of its own (Celery's
"Unrecoverable error", exit status 1) starts again: the process re-executes
itself after :data:`RESTART_DELAY_S` (same pid, same arguments; the model is
loaded again). The case that needs it: kombu's Redis transport can raise an
``AttributeError`` while it closes a connection that Redis dropped (a Redis
restart), and Celery then stops the worker for good; a local stack has no
supervisor to start it again (compose's ``restart: unless-stopped`` would),
so the uploads queued for it would wait forever. Found by ``bench/chaos.py``
(``redis-kill``); tests/integration/test_worker_restart_process.py. The
tasks it held come back after the visibility timeout.
A worker asked to stop (SIGTERM, SIGINT, SIGQUIT) stops; one that fails
before it was ever ready exits with the status (no crash loop).
With a metrics port (``spec.metrics_port(settings)`` > 0) a sidecar
(:class:`~facegate.adapters.health_http.HealthServer`) serves ``/metrics``,
``/healthz`` and ``/readyz`` on ``FACEGATE_METRICS_HOST:<port>`` from before
the app is built (liveness while a model loads) until the worker stopped.
Ready means: the app is built (``spec.built_check``; the encoder's model),
Celery consumes, and Redis and the broker answer a PING (1 s timeout). The
sidecar also reports each Celery queue's depth, read from the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import redis

from facegate.adapters.celery_app import ENCODE_QUEUE, MATCH_QUEUE, make_celery
from facegate.adapters.health_http import HealthServer
from facegate.adapters.metrics import QueueDepthCollector, serving_registry
from facegate.core.errors import FacegateError
from facegate.runtime.entrypoint import Closable, start
from facegate.runtime.settings import CommonSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=CommonSettings)
A = TypeVar("A", bound=Closable)

RESTART_DELAY_S = 2.0
"""Pause before a worker that failed after it was ready starts again."""


@dataclass(frozen=True)
class WorkerSpec(Generic[S, A]):
    """A Celery service: how to build it, register its tasks and run its worker."""

    name: str
    settings_cls: type[S]
    build: Callable[[S], A]
    """The composition root: everything the tasks need, built once per process."""
    register: Callable[[Any, A], object]
    """``register(celery, app)``: the service's tasks, bound to ``app``."""
    worker_argv: Callable[[S, list[str]], list[str]]
    """``celery worker`` arguments (queue, pool, concurrency...)."""
    ready_message: Callable[[A], str] = lambda app: "ready"
    description: str | None = None
    on_ready: Callable[[A], object] | None = None
    """Called once the worker is ready (e.g. to start a background thread)."""
    metrics_port: Callable[[S], int] = lambda settings: 0
    """The sidecar's port (0: no sidecar)."""
    built_check: str = "built"
    """The readiness check's name for "the app is built" (the encoder: ``model``)."""


class _Sidecar:
    """The worker's health/metrics server and what its checks need."""

    def __init__(self, settings: CommonSettings, port: int, built_check: str) -> None:
        self.built = threading.Event()
        self.consuming = threading.Event()
        self._clients = [
            redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
            for url in (settings.redis_url, settings.broker_url)
        ]
        self.registry = serving_registry()
        self.queues = QueueDepthCollector(self._clients[1], (ENCODE_QUEUE, MATCH_QUEUE))
        self.registry.register(self.queues)
        checks = {
            built_check: self.built.is_set,
            "consuming": self.consuming.is_set,
            "redis": self._clients[0].ping,
            "broker": self._clients[1].ping,
        }
        try:
            self.server = HealthServer(settings.metrics_host, port, checks, self.registry).start()
        except BaseException:
            self.close()
            raise
        log.info("metrics and health on %s (/metrics, /healthz, /readyz)", self.server.url)

    def close(self) -> None:
        if hasattr(self, "server"):
            self.server.close()
        with contextlib.suppress(KeyError):
            self.registry.unregister(self.queues)
        for client in self._clients:
            client.close()


def _ready_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ready-file", type=Path, help="touch this file once the worker is ready")


def run_worker(spec: WorkerSpec[S, A], argv: Sequence[str] | None = None) -> int:
    """Run ``spec``'s worker in this process until it stops; the exit code."""
    started = start(
        spec.name,
        spec.settings_cls,
        argv,
        description=spec.description,
        add_arguments=_ready_file,
        pass_through=True,
    )
    if isinstance(started, int):
        return started
    settings = started.settings
    from celery.signals import worker_ready, worker_shutting_down

    port = spec.metrics_port(settings)
    try:
        sidecar = _Sidecar(settings, port, spec.built_check) if port else None
    except OSError as exc:
        sys.stderr.write(f"facegate {spec.name}: cannot serve metrics on port {port}: {exc}\n")
        return 1
    try:
        app = spec.build(settings)
    except FacegateError as exc:
        sys.stderr.write(f"facegate {spec.name}: cannot start: {exc}\n")
        if sidecar is not None:
            sidecar.close()
        return 1
    seen: dict[str, Any] = {"controller": None, "ready": False, "asked": False}
    status = 0
    if sidecar is not None:
        sidecar.built.set()
    try:
        celery = make_celery(settings, f"facegate-{spec.name}")
        spec.register(celery, app)
        ready_file: Path | None = started.args.ready_file

        @worker_ready.connect(weak=False)  # type: ignore[misc,untyped-decorator]
        def _ready(sender: Any = None, **_: Any) -> None:
            seen["ready"] = True
            seen["controller"] = getattr(sender, "controller", None)
            log.info("%s %s", spec.name, spec.ready_message(app))
            if spec.on_ready is not None:
                spec.on_ready(app)
            if ready_file is not None:
                ready_file.write_text("ready\n")
            if sidecar is not None:
                sidecar.consuming.set()

        @worker_shutting_down.connect(weak=False)  # type: ignore[misc,untyped-decorator]
        def _asked(**_: Any) -> None:
            seen["asked"] = True  # SIGTERM, SIGINT, SIGQUIT: stop for good

        try:
            celery.worker_main(spec.worker_argv(settings, started.extra))
            # Celery keeps the status on the worker (worker_main returns None)
            status = exit_status(getattr(seen["controller"], "exitcode", None))
        except SystemExit as exc:
            status = exit_status(exc.code)
    finally:
        if sidecar is not None:
            sidecar.consuming.clear()
        app.close()
        if sidecar is not None:
            sidecar.close()  # before a restart: the new process binds the port again
    if status != 0 and seen["ready"] and not seen["asked"]:
        restart_process(spec.name, status)
    return status


def exit_status(code: object) -> int:
    """The exit status ``sys.exit(code)`` gives."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def restart_process(name: str, status: int) -> None:
    """Execute this process again, with the arguments it was started with."""
    log.error(
        "%s: the Celery worker stopped on an error (exit status %d); starting again in %.0f s",
        name, status, RESTART_DELAY_S,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(RESTART_DELAY_S)
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def celery_worker_argv(
    queue: str, node: str, pool: str, concurrency: int, log_level: str, extra: list[str]
) -> list[str]:
    """``celery worker`` arguments shared by the facegate workers."""
    return [
        "worker",
        "-Q",
        queue,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        log_level,
        "--hostname",
        f"{node}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *extra,
    ]


__all__ = ["RESTART_DELAY_S", "WorkerSpec", "celery_worker_argv", "exit_status",
           "restart_process", "run_worker"]
