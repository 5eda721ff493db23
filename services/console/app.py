"""Composition root of the console: :func:`build` wires Redis, the object
store, Celery and sign-in once; :func:`create_app` makes the FastAPI
application (routes in ``routes_*.py``, pages in ``templates/``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.core.errors import FacegateError, TransientError
from facegate.core.operators import LockoutPolicy
from services.console import (
    routes_auth,
    routes_calibration,
    routes_doors,
    routes_events,
    routes_ops,
    routes_people,
)
from services.console.auth import Auth, CsrfRefusedError, ForbiddenError
from services.console.deps import Console
from services.console.settings import ConsoleSettings
from services.console.web import NotSignedInError, PageError, error_page, forbidden, not_signed_in

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' http: https: data:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def build(settings: ConsoleSettings) -> Console:
    from facegate.adapters.celery_app import make_celery, send_encode
    from facegate.adapters.objectstore import MinioObjectStore
    from facegate.adapters.redis_operators import RedisOperators
    from facegate.adapters.redis_store import RedisStore

    store = RedisStore.from_url(settings.redis_url)
    operators = RedisOperators(store.client)
    celery = make_celery(settings, "facegate-console")
    return Console(
        settings=settings,
        store=store,
        operators=operators,
        objects=MinioObjectStore(settings),
        auth=auth_for(settings, operators),
        send=lambda request: send_encode(celery, request),
        resources=[celery],
    )


def auth_for(settings: ConsoleSettings, operators: Any) -> Auth:
    return Auth(
        operators,
        lockout=LockoutPolicy(
            settings.console_lockout_failures,
            settings.console_lockout_ip_failures,
            settings.console_lockout_s,
        ),
        idle_s=settings.console_session_idle_s,
        absolute_s=settings.console_session_max_s,
    )


class BodyLimit:
    """413 for a request body over ``limit`` bytes: from Content-Length
    before anything is read, else counted as it arrives."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(send, self.limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLargeError()
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLargeError:
            await _too_large(send, self.limit)


class _TooLargeError(Exception):
    """Raised from ``receive`` once a body without a length passes the limit
    (answered 413 by the route's exception handler)."""


def _too_large_page(limit: int) -> bytes:
    return (
        f"<!doctype html><title>Too large</title><h1>Upload too large</h1>"
        f"<p>The request is over {limit // 2**20} MiB. Send fewer or smaller photos.</p>"
    ).encode()


async def _too_large(send: Send, limit: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": _too_large_page(limit)})


def create_app(console: Console) -> FastAPI:
    app = FastAPI(title="facegate console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    registry = CollectorRegistry()
    requests = Counter(
        "facegate_console_requests", "HTTP requests", ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "facegate_console_request_seconds", "request latency", ["route"], registry=registry
    )
    app.state.registry = registry

    app.add_exception_handler(NotSignedInError, lambda r, e: not_signed_in(r))
    limit = console.settings.max_body_bytes
    app.add_exception_handler(
        _TooLargeError,
        lambda r, e: HTMLResponse(_too_large_page(limit), status_code=413),
    )
    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(CsrfRefusedError, forbidden)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return error_page(request, exc.status, exc.title, exc.message)

    @app.exception_handler(TransientError)
    async def _transient(request: Request, exc: TransientError) -> Response:
        return error_page(request, 503, "Service unavailable", f"{exc} Try again in a moment.")

    @app.exception_handler(FacegateError)
    async def _facegate(request: Request, exc: FacegateError) -> Response:
        return error_page(request, 400, "Refused", str(exc))

    for module in (
        routes_auth, routes_doors, routes_people, routes_events, routes_calibration, routes_ops
    ):
        app.include_router(module.router)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )
    app.add_middleware(HeadersAndMetrics, requests=requests, latency=latency)
    app.add_middleware(BodyLimit, limit=console.settings.max_body_bytes)
    return app


class HeadersAndMetrics:
    """Security headers on every response; request counts and latency per
    route (a plain ASGI middleware: errors and streams pass through as they are)."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                route = getattr(scope.get("route"), "path", "other")
                self.requests.labels(scope["method"], route, str(message["status"])).inc()
                self.latency.labels(route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["BodyLimit", "auth_for", "build", "create_app"]
