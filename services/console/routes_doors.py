"""The Doors page: list, add, edit, and each door's public key for its lock."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facegate.core.door_report import door_report
from facegate.core.policy import DoorPolicy
from facegate.core.signing import DoorSigner
from services.console.deps import Console
from services.console.forms import FormError, door_name, door_policy
from services.console.web import PageError, SignedIn, changing, console, render, see_other

router = APIRouter()


def default_threshold() -> float:
    """The matcher's default threshold (FACEGATE_THRESHOLD) for verify doors."""
    from facegate.tools.cli_report import _default_threshold

    return _default_threshold(dict(os.environ))


def door_rows(app: Console) -> list[dict[str, Any]]:
    _, people = app.store.templates_snapshot()
    default = default_threshold()
    rows = []
    for name in app.store.list_doors():
        policy = app.store.get_door(name, default_threshold=default)
        if policy is None:
            continue
        report = door_report(policy, people, default_threshold=default)
        rows.append({"policy": policy, "report": report})
    return rows


def public_key(app: Console, door: str) -> tuple[int, str, str]:
    version = app.store.door_key_version(door)
    signer = DoorSigner.derive(app.settings.signing_secret.get_secret_value(), door, version)
    return version, signer.kid, signer.public_key.hex


def _door(app: Console, door: str) -> DoorPolicy:
    try:
        name = door_name(door)
    except FormError as exc:
        raise PageError(404, "Unknown door", str(exc)) from exc
    policy = app.store.get_door(name, default_threshold=default_threshold())
    if policy is None:
        raise PageError(404, "Unknown door", f"There is no door {door!r}.")
    return policy


@router.get("/doors")
def doors_page(request: Request, session: SignedIn) -> Response:
    app = console(request)
    return render(request, "doors.html", rows=door_rows(app), people=app.store.people())


@router.get("/doors/{door}")
def door_page(door: str, request: Request, session: SignedIn) -> Response:
    app = console(request)
    policy = _door(app, door)
    version, kid, key = public_key(app, policy.door)
    return render(
        request, "door.html", policy=policy, key_version=version, kid=kid, public_key=key,
        people=app.store.people(),
    )


@router.post("/doors")
async def add_door(request: Request) -> Response:
    session, form = await changing(request)
    app = console(request)
    try:
        name = door_name(str(form.get("door") or "").strip())
        if await run_in_threadpool(app.store.get_door, name) is not None:
            raise FormError(f"door {name} already exists: edit it instead")
        policy = door_policy(form, name, None)
    except FormError as exc:
        return render(
            request, "doors.html", status=400, rows=door_rows(app), people=app.store.people(),
            error=str(exc),
        )
    await run_in_threadpool(app.admin(session).set_door, policy)
    return see_other(f"/doors/{name}?saved=1")


@router.post("/doors/{door}")
async def edit_door(door: str, request: Request) -> Response:
    session, form = await changing(request)
    app = console(request)
    current_policy = _door(app, door)
    try:
        policy = door_policy(form, current_policy.door, current_policy)
    except FormError as exc:
        version, kid, key = public_key(app, current_policy.door)
        return render(
            request, "door.html", status=400, policy=current_policy, key_version=version,
            kid=kid, public_key=key, people=app.store.people(), error=str(exc),
        )
    await run_in_threadpool(app.admin(session).set_door, policy)
    return see_other(f"/doors/{policy.door}?saved=1")
