"""ASGI plumbing of ingest's HTTP front end: body limits, the access log, redaction.

- :class:`BodyLimit` refuses a body before any of it is read: a declared
  ``Content-Length`` over the route's limit is 413 at once (400 when it is
  not a number, 411 when a POST has neither a length nor chunked transfer
  encoding); a chunked body is counted as it streams in and the read stops
  with 413 as soon as it passes the limit. Each receive waits at most
  ``timeout_s`` (408): a client that stops sending does not hold a worker.
- :class:`AccessLog` writes one DEBUG line per request to
  ``services.ingest.http``, with the query string cut to ``?...``
  (:func:`redact`): a token put in a URL by mistake never reaches a log.
  Uvicorn's own access log is off, and :func:`redact_uvicorn_logs` puts the
  same redaction on uvicorn's loggers.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from starlette.exceptions import HTTPException

log = logging.getLogger("services.ingest.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_QUERY = re.compile(r"\?[^\s\"']*")


def redact(text: str) -> str:
    """``text`` with every URL query string cut to ``?...``."""
    return _QUERY.sub("?...", text)


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def redact_uvicorn_logs() -> None:
    """Cut query strings from whatever uvicorn's loggers write (idempotent)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redacting) for f in logger.filters):
            logger.addFilter(_Redacting())


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body exceeds {limit} bytes")


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = (
        b'{"error":"' + code.encode() + b'","message":"' + message.encode() + b'"}'
    )  # codes and messages here are fixed ASCII without quotes
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),  # the unread body is never parsed as a request
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Caps request bodies per path: ``limit_for(path)`` is the limit in
    bytes, ``None`` for paths that take no body (left to the router)."""

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int | None], timeout_s: float
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        raw = headers.get(b"content-length")
        if raw is None and not chunked:
            await _answer(send, 411, "length_required", "send Content-Length")
            return
        if raw is not None:
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                await _answer(send, 400, "bad_request", "bad Content-Length")
                return
            if length > limit:
                await _answer(send, 413, "too_large", f"body of {length} bytes exceeds {limit}")
                return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            try:
                with anyio.fail_after(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "the body did not arrive in time") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, capped, send)


class AccessLog:
    """One redacted DEBUG line per request: client, request line, status, time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            query = scope.get("query_string", b"")
            target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
            client = scope.get("client") or ("-", 0)
            log.debug(
                "%s %s",
                client[0],
                redact(
                    f'"{scope["method"]} {target} HTTP/{scope.get("http_version", "1.1")}" '
                    f"{status or '-'} {time.monotonic() - started:.3f}s"
                ),
            )


__all__ = ["AccessLog", "BodyLimit", "BodyTooLargeError", "redact", "redact_uvicorn_logs"]
