"""``/healthz`` (the process answers), ``/readyz`` (Redis and the object
store answer) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from facegate.core.errors import FacegateError
from services.console.web import console

router = APIRouter()


@router.get("/healthz")
def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    app = console(request)
    problems = []
    try:
        await run_in_threadpool(app.store.ping)
    except FacegateError as exc:
        problems.append(f"redis: {exc}")
    try:
        await run_in_threadpool(app.objects.list_objects, "enroll/", limit=1)
    except FacegateError as exc:
        problems.append(f"object store: {exc}")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
