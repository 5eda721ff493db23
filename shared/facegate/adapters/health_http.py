"""The Celery workers' sidecar: ``/metrics``, ``/healthz`` and ``/readyz``
on a small HTTP server of their own.

::

    server = HealthServer(host, port, {"redis": ping_redis, "broker": ping_broker})
    server.start()                    # a daemon thread; answers at once
    ...
    server.close()

``/metrics`` is prometheus-client's own WSGI app over
:func:`facegate.adapters.metrics.serving_registry`; ``/healthz`` (liveness)
answers 200 ``{"status": "ok"}`` as long as the process serves at all;
``/readyz`` runs every readiness check (each a callable that raises or
returns false when it fails) and answers 200 ``{"status": "ready", "checks":
{...}}`` when all pass, else 503 ``{"status": "not_ready", ...}`` naming the
check that failed. The server is a threading ``wsgiref`` server: a slow
check never holds up a scrape.

Why one process serves: facegate's workers do not fork (the encoder runs
Celery's ``threads`` pool, the matcher ``solo`` or ``threads``), so the
process that runs the tasks holds every metric and serves them. Should
someone run a worker with a forking pool anyway, setting
``PROMETHEUS_MULTIPROC_DIR`` (an empty folder per start) makes every
process write its values there and this server aggregate them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from facegate.adapters.metrics import serving_registry

log = logging.getLogger(__name__)

Check = Callable[[], object]
StartResponse = Callable[[str, list[tuple[str, str]]], object]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """``(all passed, {name: "ok" | "failed: <why>"})``."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            passed = check()
        except Exception as exc:  # a check that raises has failed: say why
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
            continue
        results[name] = "ok" if passed or passed is None else "failed"
    return all(v == "ok" for v in results.values()), results


def health_app(
    checks: Mapping[str, Check], registry: CollectorRegistry | None = None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app of the three routes (``/metrics`` serves ``registry``,
    by default :func:`~facegate.adapters.metrics.serving_registry`)."""
    metrics = make_wsgi_app(registry or serving_registry())

    def _json(start: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        start(status, [("Content-Type", "application/json"),
                       ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return [body]

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start, "405 Method Not Allowed", {"error": "method_not_allowed"})
        if path == "/metrics":
            served: Iterable[bytes] = metrics(environ, start)  # type: ignore[arg-type]
            return served
        if path == "/healthz":
            return _json(start, "200 OK", {"status": "ok"})
        if path == "/readyz":
            ready, results = run_checks(checks)
            if ready:
                return _json(start, "200 OK", {"status": "ready", "checks": results})
            return _json(start, "503 Service Unavailable",
                         {"status": "not_ready", "checks": results})
        return _json(start, "404 Not Found", {"error": "not_found"})

    return app


class HealthServer:
    """``/metrics``, ``/healthz``, ``/readyz`` on ``host:port`` (port 0: any free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Mapping[str, Check],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.checks = dict(checks)
        app = health_app(self.checks, registry)
        self._server = make_server(host, port, app, _Server, _QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host!s}:{self.port}"

    def start(self) -> HealthServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name="health-http", daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()


__all__ = ["Check", "HealthServer", "health_app", "run_checks"]
