"""The Calibration page: per door, the distances of granted and denied
decisions, the threshold a target false-accept rate gives, and (admins) the
threshold changed, audited."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facegate.core.audit import Action
from facegate.core.policy import DoorPolicy
from services.console.calibrate import BIN, TOP, histogram, suggest
from services.console.deps import Console
from services.console.forms import FormError, optional_float
from services.console.logview import LogFilter, query
from services.console.routes_doors import _door, default_threshold
from services.console.web import PageError, SignedIn, changing, console, render, see_other

router = APIRouter()

SAMPLE = 2000


def _distances(app: Console, door: str) -> tuple[list[float], list[float]]:
    page = query(app.store.audit_entries, LogFilter(door=door), page_size=SAMPLE,
                 scan_limit=50_000)
    granted: list[float] = []
    denied: list[float] = []
    for r in page.rows:
        if r.get("kind") != "decision" or not r.get("distance"):
            continue
        (granted if r["decision"] == "OPEN" else denied).append(float(r["distance"]))
    return granted, denied


def _view(app: Console, policy: DoorPolicy, target: float) -> dict[str, Any]:
    _, people = app.store.templates_snapshot()
    granted, denied = _distances(app, policy.door)
    return {
        "policy": policy,
        "hist": histogram(granted, denied),
        "bin": BIN,
        "top": TOP,
        "n_granted": len(granted),
        "n_denied": len(denied),
        "suggestion": suggest(policy, people, target, default_threshold=default_threshold()),
        "doors": app.store.list_doors(),
    }


@router.get("/calibration")
def calibration_index(request: Request, session: SignedIn) -> Response:
    doors = console(request).store.list_doors()
    if not doors:
        return render(request, "calibration.html", policy=None, doors=[])
    return see_other(f"/calibration/{doors[0]}")


@router.get("/calibration/{door}")
async def calibration_page(
    door: str, request: Request, session: SignedIn
) -> Response:
    app = console(request)
    policy = _door(app, door)
    try:
        target = optional_float(request.query_params, "far", low=1e-7, high=0.5)
    except FormError as exc:
        raise PageError(400, "Bad target", str(exc)) from exc
    view = await run_in_threadpool(_view, app, policy, target or policy.stranger_rate)
    return render(request, "calibration.html", **view)


@router.post("/calibration/{door}/threshold")
async def set_threshold(door: str, request: Request) -> Response:
    session, form = await changing(request)
    app = console(request)
    policy = _door(app, door)
    try:
        threshold = optional_float(form, "threshold", low=0.05, high=2.0)
    except FormError as exc:
        raise PageError(400, "Bad threshold", str(exc)) from exc
    updated = replace(policy, threshold=threshold)
    await run_in_threadpool(app.admin(session).set_door, updated, action=Action.THRESHOLD_SET)
    return see_other(f"/calibration/{policy.door}?saved=1")
