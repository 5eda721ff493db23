"""Ingest's HTTP front end: FastAPI (Starlette) under uvicorn, JSON in and out.

Routes (docs/DESIGN.md; the OpenAPI document is served at ``/openapi.json``):

=======  ==============================  ============================  ==========
method   path                            auth                          success
=======  ==============================  ============================  ==========
POST     ``/v1/events``                  webhook token (Bearer)        200
POST     ``/v1/doors/{door}/presign``    camera token (Bearer)         200
POST     ``/v1/doors/{door}/uploads``    camera token (Bearer)         201
GET      ``/healthz``                    none (liveness)               200
GET      ``/readyz``                     none (Redis and S3 answer)    200
GET      ``/openapi.json``               none                          200
GET      ``/metrics``                    none (Prometheus text)        200
=======  ==============================  ============================  ==========

Errors are :class:`~services.ingest.api_models.ErrorBody` (``{"error":
<code>, "message": <text>}``) with 400 (malformed, including what pydantic
refuses), 401 (token), 404 (route, or a door that is not configured), 405
(method), 408 (body too slow), 411 (no length), 413 (too large: declared, or
counted while a chunked body streams in; ``http_limits.py``), 415 (not an
accepted image type), 503 (Redis, store or broker unavailable: retry) and
500 (anything else; the traceback goes to the log, never to the client).
Handlers only decode, call one :class:`~services.ingest.app.IngestApp`
method (in a worker thread: they block) and encode.

Tokens travel only in the ``Authorization`` header, never in a URL; every
line logged here has its query string cut to ``?...``.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from facegate.adapters import metrics
from facegate.core import keys
from facegate.core.errors import BadMessageError, ConfigError, PermanentError, TransientError
from services.ingest.api_models import (
    HEX32_PATTERN,
    NAME_PATTERN,
    PERSON_PATTERN,
    ErrorBody,
    EventResponse,
    Health,
    PresignRequest,
    PresignResponse,
    Ready,
    UploadResponse,
)
from services.ingest.http_limits import AccessLog, BodyLimit, redact
from services.ingest.server import IngestServer
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

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}
_ERR: dict[str, Any] = {"model": ErrorBody}
_COMMON: dict[int | str, dict[str, Any]] = {400: _ERR, 500: _ERR}
_POST: dict[int | str, dict[str, Any]] = {
    **_COMMON, 401: _ERR, 408: _ERR, 411: _ERR, 413: _ERR, 503: _ERR
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status >= 400:
        headers["Connection"] = "close"  # the body may be unread: never parse it as a request
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        name = ".".join(loc) or "body"
        if err.get("type") == "json_invalid":
            problems.append("body is not JSON")
        elif err.get("type") == "missing":
            problems.append(f"{name} is required")
        elif err.get("type") == "model_attributes_type":
            problems.append("body must be a JSON object")
        else:
            problems.append(f"{name}: {err.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


def error_response(exc: Exception, request: Request) -> JSONResponse:
    """The answer to an exception raised while handling ``request``."""
    if isinstance(exc, RequestValidationError):
        return _error(400, "bad_request", _validation_message(exc))
    if isinstance(exc, HTTPException):
        return _error(exc.status_code, _CODES.get(exc.status_code, "error"), str(exc.detail))
    if isinstance(exc, UnknownDoorError):
        return _error(404, "unknown_door", str(exc))
    if isinstance(exc, UnsupportedMediaError):
        return _error(415, "unsupported_media_type", str(exc))
    if isinstance(exc, UnauthorizedError):
        return _error(401, "unauthorized", str(exc))
    if isinstance(exc, BadMessageError):
        return _error(400, "bad_request", str(exc))
    if isinstance(exc, PermanentError):
        return _error(400, exc.reason, str(exc))
    where = f"{request.method} {redact(str(request.url.path))}"
    if isinstance(exc, (TransientError, ConfigError)):
        # ConfigError here is the store refusing ingest's own credentials:
        # the sender cannot fix it, but a retry after the operator does can.
        log.warning("%s: unavailable: %s", where, redact(str(exc)))
        return _error(503, "unavailable", "a backend is unavailable; retry")
    log.exception("%s failed", where)
    return _error(500, "internal_error", "internal error")


class _GuardedRoute(APIRoute):
    """A route whose every exception (validation included) becomes an error body."""

    def get_route_handler(self) -> Any:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response: Response = await inner(request)
            except Exception as exc:
                return error_response(exc, request)
            return response

        return handler


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


_webhook_auth = HTTPBearer(auto_error=False, scheme_name="webhookToken")
_camera_auth = HTTPBearer(auto_error=False, scheme_name="cameraToken")
# Documented in the OpenAPI document; the token itself is read by :func:`_bearer`.
WebhookAuth = Annotated[HTTPAuthorizationCredentials | None, Security(_webhook_auth)]
CameraAuth = Annotated[HTTPAuthorizationCredentials | None, Security(_camera_auth)]
DoorId = Annotated[str, Path(pattern=NAME_PATTERN, description="door id", examples=["front"])]


async def _read(request: Request) -> bytes:
    """The whole body; :class:`BodyLimit` caps it while it streams in."""
    parts = [chunk async for chunk in request.stream()]
    return b"".join(parts)


def _one(request: Request, name: str) -> None:
    if len(request.query_params.getlist(name)) > 1:
        raise BadMessageError(f"{name} given twice")


def _routes(app: IngestApp) -> APIRouter:
    router = APIRouter(route_class=_GuardedRoute)

    @router.get("/healthz", response_model=Health, responses=_COMMON)
    async def healthz() -> dict[str, Any]:
        """Liveness: the process answers (no backend is asked)."""
        return app.health()

    @router.get("/readyz", response_model=Ready, responses={**_COMMON, 503: _ERR})
    async def readyz() -> dict[str, str]:
        """Readiness: Redis and the object store answer (503 otherwise)."""
        return await run_in_threadpool(app.ready)

    @router.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        """Prometheus text exposition (not JSON: outside the OpenAPI document)."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    event_body = {"content": {"application/json": {"schema": {"type": "object"}}}}

    @router.post(
        "/v1/events",
        response_model=EventResponse,
        responses=_POST,
        openapi_extra={"requestBody": {"required": True, **event_body}},
    )
    async def events(request: Request, _auth: WebhookAuth = None) -> dict[str, Any]:
        """The object store's webhook (MinIO or SeaweedFS filer body)."""
        token = _bearer(request.headers.get("authorization"))
        body = await _read(request)
        result = await run_in_threadpool(app.handle_event, body, token)
        return result.to_dict()

    @router.post(
        "/v1/doors/{door}/presign",
        response_model=PresignResponse,
        responses={**_POST, 404: _ERR, 415: _ERR},
    )
    async def presign(
        request: Request, body: PresignRequest, door: DoorId, _auth: CameraAuth = None
    ) -> dict[str, Any]:
        """A presigned PUT URL for one fresh upload key, its claim stored."""
        token = _bearer(request.headers.get("authorization"))
        result = await run_in_threadpool(
            app.presign,
            door,
            body.camera,
            body.badge or None,
            token,
            body.ext,
            body.content_type,
            body.approach or None,
        )
        return {
            "upload_id": result.upload_id,
            "key": result.key,
            "url": result.url,
            "expires_in": result.expires_in,
        }

    image = {"schema": {"type": "string", "format": "binary"}}
    upload_body = {"content": {ct: image for ct in sorted(keys.IMAGE_CONTENT_TYPES)}}

    @router.post(
        "/v1/doors/{door}/uploads",
        status_code=HTTPStatus.CREATED,
        response_model=UploadResponse,
        responses={**_POST, 404: _ERR, 415: _ERR},
        openapi_extra={"requestBody": {"required": True, **upload_body}},
    )
    async def upload(
        request: Request,
        door: DoorId,
        camera: Annotated[str, Query(pattern=NAME_PATTERN, examples=["cam1"])],
        badge: Annotated[str | None, Query(pattern=PERSON_PATTERN, examples=["alice"])] = None,
        approach: Annotated[str | None, Query(pattern=HEX32_PATTERN)] = None,
        _auth: CameraAuth = None,
    ) -> dict[str, Any]:
        """The image itself: stored under a fresh key, then sent on."""
        received = time.time()
        for name in ("camera", "badge", "approach"):
            _one(request, name)
        token = _bearer(request.headers.get("authorization"))
        content_type = request.headers.get("content-type")
        # refuse (401, 400, 404, 415) before reading a possibly large body
        app.check_camera_token(token)
        await run_in_threadpool(
            app.check_upload, door, camera, content_type, badge or None, approach or None
        )
        data = await _read(request)
        uploaded = await run_in_threadpool(
            app.upload,
            door,
            camera,
            badge or None,
            data,
            content_type,
            token,
            approach or None,
            received=received,
        )
        return {"upload_id": uploaded.upload_id, "key": uploaded.key}

    return router


def _limit_for(app: IngestApp) -> Any:
    def limit(path: str) -> int | None:
        if path == "/v1/events":
            return MAX_EVENT_BYTES
        if path.startswith("/v1/doors/") and path.endswith("/uploads"):
            return app.settings.max_upload_bytes
        if path.startswith("/v1/doors/") and path.endswith("/presign"):
            return MAX_JSON_BYTES
        return None

    return limit


def make_app(app: IngestApp, *, body_timeout_s: float = REQUEST_TIMEOUT_S) -> Any:
    """The ASGI application: FastAPI behind the body limits and the access log
    (``body_timeout_s``: the longest wait for the next piece of a body, 408)."""
    api = FastAPI(
        title="facegate ingest",
        version="1",
        description="Camera uploads and object-store webhooks (docs/DESIGN.md).",
        docs_url=None,
        redoc_url=None,
    )
    api.include_router(_routes(app))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        return error_response(exc, request)

    api.add_exception_handler(HTTPException, on_http_error)
    api.add_exception_handler(RequestValidationError, on_http_error)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            doc = get_openapi(title=api.title, version=api.version,
                              description=api.description, routes=api.routes)  # fmt: skip
            for ops in doc.get("paths", {}).values():
                for op in ops.values():
                    op.get("responses", {}).pop("422", None)  # validation answers 400
            schemas = doc.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            api.openapi_schema = doc
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return AccessLog(BodyLimit(api, _limit_for(app), body_timeout_s))


def make_server(app: IngestApp, host: str, port: int) -> IngestServer:
    """A server bound to ``host:port`` (not yet serving) whose handlers use ``app``."""
    return IngestServer(make_app(app), host, port)


__all__ = ["IngestServer", "error_response", "make_app", "make_server", "redact"]
