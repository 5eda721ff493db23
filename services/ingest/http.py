"""Ingest's HTTP front end: stdlib ``ThreadingHTTPServer``, JSON in and out.

Routes (docs/DESIGN.md):

=======  ==============================  ============================  ==========
method   path                            auth                          success
=======  ==============================  ============================  ==========
POST     ``/v1/events``                  webhook token (Bearer)        200
POST     ``/v1/doors/<door>/presign``    camera token (Bearer)         200
POST     ``/v1/doors/<door>/uploads``    camera token (Bearer)         201
GET      ``/healthz``                    none                          200
GET      ``/metrics``                    none                          200
=======  ==============================  ============================  ==========

Errors are ``{"error": <code>, "message": <text>}`` with 400 (malformed),
401 (token), 404 (route, or a door that is not configured), 405 (method),
411 (no length), 413 (too large), 415 (not an accepted image type), 503
(Redis, store or broker unavailable: retry) and 500 (anything else; the
traceback goes to the log, never to the client). Handlers only decode, call
one :class:`~services.ingest.app.IngestApp` method and encode.

Tokens travel only in the ``Authorization`` header (both MinIO's and
SeaweedFS's webhooks send one), never in a URL: a URL ends up in access logs
and in the store's own error messages. Every line this module logs has its
query string replaced by ``?...`` (:func:`redact`), in case a client put
something there anyway.
"""

from __future__ import annotations

import json
import logging
import re
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from facegate.adapters import metrics
from facegate.core.errors import BadMessageError, ConfigError, PermanentError, TransientError
from services.ingest.service import (
    IngestApp,
    UnauthorizedError,
    UnknownDoorError,
    UnsupportedMediaError,
)

log = logging.getLogger("services.ingest.http")

MAX_EVENT_BYTES = 1024 * 1024
MAX_JSON_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 15.0

_DOOR_ROUTE = re.compile(r"/v1/doors/(?P<door>[^/]{1,200})/(?P<action>presign|uploads)\Z")
_QUERY = re.compile(r"\?[^\s\"']*")


def redact(text: str) -> str:
    """``text`` with every URL query string cut to ``?...``."""
    return _QUERY.sub("?...", text)


class HttpError(Exception):
    """An answer other than success, with its status and error code."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", f"{name} given twice")
    return values[0] or None


class IngestHandler(BaseHTTPRequestHandler):
    """One request; the app is a class attribute set by :func:`make_server`."""

    app: ClassVar[IngestApp]
    server_version = "facegate-ingest"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S

    # --- plumbing ------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), redact(format % args))

    @property
    def safe_path(self) -> str:
        return redact(self.path)

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "length_required", "send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "length_required", "send Content-Length")
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "bad Content-Length")
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"body of {length} bytes exceeds {limit}",
            )
        return self.rfile.read(length)

    def _json(self, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
        body = self._body(limit)
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "body must be a JSON object")
        return data

    def _dispatch(self, method: str) -> None:
        try:
            status, payload = self._route(method)
        except HttpError as exc:
            status, payload = exc.status, {"error": exc.code, "message": exc.message}
        except UnknownDoorError as exc:
            status, payload = HTTPStatus.NOT_FOUND, {"error": "unknown_door", "message": str(exc)}
        except UnsupportedMediaError as exc:
            status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            payload = {"error": "unsupported_media_type", "message": str(exc)}
        except UnauthorizedError as exc:
            status, payload = (
                HTTPStatus.UNAUTHORIZED,
                {"error": "unauthorized", "message": str(exc)},
            )
        except BadMessageError as exc:
            status, payload = HTTPStatus.BAD_REQUEST, {"error": "bad_request", "message": str(exc)}
        except PermanentError as exc:
            status, payload = HTTPStatus.BAD_REQUEST, {"error": exc.reason, "message": str(exc)}
        except (TransientError, ConfigError) as exc:
            # ConfigError here is the store refusing ingest's own credentials:
            # the sender cannot fix it, but a retry after the operator does can.
            log.warning("%s %s: unavailable: %s", method, self.safe_path, redact(str(exc)))
            status = HTTPStatus.SERVICE_UNAVAILABLE
            payload = {"error": "unavailable", "message": "a backend is unavailable; retry"}
        except Exception:
            log.exception("%s %s failed", method, self.safe_path)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            payload = {"error": "internal_error", "message": "internal error"}
        if status >= 400:
            # the body may be unread: never parse its rest as the next request
            self.close_connection = True
        try:
            self._send(status, payload)
        except OSError as exc:
            log.info("client went away before the answer: %s", exc)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/metrics":  # Prometheus text, not JSON
            body, content_type = metrics.exposition()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- routes --------------------------------------------------------------------

    def _route(self, method: str) -> tuple[HTTPStatus, dict[str, Any]]:
        received = time.time()
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        if path == "/healthz":
            self._allow(method, "GET")
            return HTTPStatus.OK, self.app.health()
        if path == "/v1/events":
            self._allow(method, "POST")
            token = _bearer(self.headers.get("Authorization"))
            body = self._body(MAX_EVENT_BYTES)
            return HTTPStatus.OK, self.app.handle_event(body, token).to_dict()
        match = _DOOR_ROUTE.match(path)
        if match is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "not_found", f"no route {path}")
        self._allow(method, "POST")
        door = match["door"]
        token = _bearer(self.headers.get("Authorization"))
        if match["action"] == "presign":
            data = self._json()
            camera = data.get("camera")
            badge = data.get("badge")
            ext = data.get("ext", "jpg")
            approach = data.get("approach")
            if approach is not None and not isinstance(approach, str):
                raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "approach must be a string")
            content_type = data.get("content_type")
            if not isinstance(camera, str) or not camera:
                raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "camera is required")
            if badge is not None and not isinstance(badge, str):
                raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "badge must be a string")
            if not isinstance(ext, str):
                raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "ext must be a string")
            if content_type is not None and not isinstance(content_type, str):
                raise HttpError(
                    HTTPStatus.BAD_REQUEST, "bad_request", "content_type must be a string"
                )
            result = self.app.presign(
                door, camera, badge or None, token, ext, content_type, approach or None
            )
            return HTTPStatus.OK, {
                "upload_id": result.upload_id,
                "key": result.key,
                "url": result.url,
                "expires_in": result.expires_in,
            }
        camera = _one(query, "camera")
        badge = _one(query, "badge")
        if camera is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", "camera is required")
        # refuse (401, 404, 415) before reading a possibly large body
        self.app.check_camera_token(token)
        content_type = self.headers.get("Content-Type")
        approach = _one(query, "approach")
        self.app.check_upload(door, camera, content_type, badge, approach)
        body = self._body(self.app.settings.max_upload_bytes)
        uploaded = self.app.upload(
            door, camera, badge, body, content_type, token, approach, received=received
        )
        return HTTPStatus.CREATED, {"upload_id": uploaded.upload_id, "key": uploaded.key}

    def _allow(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", f"use {allowed}")


class IngestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(app: IngestApp, host: str, port: int) -> IngestServer:
    """A server bound to ``host:port`` (not yet serving) whose handlers use ``app``."""
    handler = type("BoundIngestHandler", (IngestHandler,), {"app": app})
    return IngestServer((host, port), handler)


__all__ = ["HttpError", "IngestHandler", "IngestServer", "make_server", "redact"]
