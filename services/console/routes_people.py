"""The People page: enrolled people with a photo and their template count;
enrol from photos, add a template from a door snapshot, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from facegate.clients.admin import PhotosRefusedError
from facegate.core import keys
from facegate.core.errors import BadMessageError, NoAnswerError, UnknownDoorError
from facegate.core.operators import Session
from services.console.deps import Console
from services.console.photos import Checked, check_photo
from services.console.web import PageError, SignedIn, changing, console, render, see_other

router = APIRouter()


def people_rows(app: Console) -> list[dict[str, Any]]:
    _, templates = app.store.templates_snapshot()
    doors = {d: app.store.get_door(d) for d in app.store.list_doors()}
    rows = []
    for person in sorted(templates):
        at = [d for d, p in doors.items() if p is not None and p.allows(person)]
        rows.append({"name": person, "templates": len(templates[person]), "doors": at})
    return rows


def _page(request: Request, status: int = 200, **extra: Any) -> Response:
    app = console(request)
    return render(
        request, "people.html", status=status, rows=people_rows(app),
        doors=app.store.list_doors(), **extra,
    )


def _person(name: str) -> str:
    try:
        return keys.check_person(name)
    except BadMessageError as exc:
        raise PageError(404, "Unknown person", str(exc)) from exc


@router.get("/people")
def people_page(request: Request, session: SignedIn) -> Response:
    return _page(request)


async def _enrol(
    request: Request, session: Session, person: str, photos: list[tuple[str, bytes]],
    doors: list[str],
) -> Response:
    app = console(request)
    admin = app.admin(session)
    try:
        result = await run_in_threadpool(
            admin.enroll, person, photos, doors=doors,
            timeout_s=app.settings.console_enrol_timeout_s,
        )
    except PhotosRefusedError as exc:
        return await run_in_threadpool(
            _page, request, 422, error=f"{person} was not enrolled: nothing was stored.",
            refused=[(p.name, p.problem or "fine") for p in exc.photos],
        )
    except UnknownDoorError as exc:
        return await run_in_threadpool(_page, request, 404, error=str(exc))
    except NoAnswerError as exc:
        return await run_in_threadpool(_page, request, 503, error=f"{exc}. Nothing was enrolled.")
    return await run_in_threadpool(
        _page,
        request,
        notice=f"Enrolled {result.person}: {len(result.templates)} new template(s), "
        f"{result.total_templates} in all"
        + (f"; allowed at {', '.join(result.doors)}" if result.doors else ""),
        accepted=[(p.name, f"1 face, quality {p.quality:.2f}") for p in result.photos
                  if p.quality is not None],
    )


@router.post("/people")
async def enrol(request: Request) -> Response:
    session, form = await changing(request)
    app = console(request)
    name = str(form.get("name") or "").strip()
    try:
        keys.check_person(name)
    except BadMessageError as exc:
        return await run_in_threadpool(_page, request, 400, error=str(exc))
    uploads = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
    if not uploads:
        return await run_in_threadpool(_page, request, 400, error="Choose at least one photo.")
    if len(uploads) > app.settings.console_max_photos:
        most = app.settings.console_max_photos
        return await run_in_threadpool(
            _page, request, 400, error=f"At most {most} photos at a time."
        )
    checked: list[Checked] = []
    for upload in uploads:
        data = await upload.read(app.settings.console_max_photo_bytes + 1)
        checked.append(
            check_photo(upload.filename or "photo", data, app.settings.console_max_photo_bytes)
        )
    bad = [c for c in checked if c.problem is not None]
    if bad:
        status = 413 if all("too large" in (c.problem or "") for c in bad) else 415
        return await run_in_threadpool(
            _page, request, status, error=f"{name} was not enrolled: nothing was stored.",
            refused=[(c.name, c.problem or "fine") for c in checked],
        )
    doors = [d for d in form.getlist("doors") if isinstance(d, str) and d]
    return await _enrol(request, session, name, [(c.name, c.data) for c in checked], doors)


@router.post("/snapshots/enrol")
async def enrol_snapshot(request: Request) -> Response:
    """Add a template to ``person`` from a door snapshot (``snapshot``:
    door/camera/upload_id), through the encoder like any enrolment photo."""
    session, form = await changing(request)
    app = console(request)
    name = _person(str(form.get("person") or "").strip())
    try:
        door, camera, upload_id = str(form.get("snapshot") or "").split("/")
        prefix = keys.upload_object_key(door, camera, upload_id, "x")[:-1]
    except (ValueError, BadMessageError) as exc:
        raise PageError(404, "Unknown snapshot", "That snapshot does not exist.") from exc
    found = await run_in_threadpool(app.objects.list_objects, prefix, limit=1)
    if not found:
        raise PageError(404, "Unknown snapshot", "That snapshot is gone (revoked or expired).")
    data = await run_in_threadpool(
        app.objects.get, found[0].key, app.settings.console_max_photo_bytes
    )
    checked = check_photo(found[0].key, data, app.settings.console_max_photo_bytes)
    if checked.problem is not None:
        raise PageError(415, "Not an image", checked.problem)
    return await _enrol(request, session, name, [(checked.name, checked.data)], [])


@router.post("/people/{person}/revoke")
async def revoke(person: str, request: Request) -> Response:
    session, form = await changing(request)
    app = console(request)
    name = _person(person)
    if str(form.get("confirm") or "").strip() != name:
        message = f"Type {name} to confirm the revocation."
        return await run_in_threadpool(_page, request, 400, error=message)
    if name not in await run_in_threadpool(app.store.people):
        raise PageError(404, "Unknown person", f"{name} is not enrolled.")
    result = await run_in_threadpool(app.admin(session).revoke, name)
    return await run_in_threadpool(
        _page,
        request,
        notice=f"Revoked {result.person}: templates erased, {result.photos_deleted} enrolment "
        f"photo(s) and {result.snapshots_deleted} door snapshot(s) deleted"
        + (f", removed from {', '.join(result.doors)}" if result.doors else ""),
    )


@router.get("/people/{person}/photo")
def person_photo(person: str, request: Request, session: SignedIn) -> Response:
    app = console(request)
    name = _person(person)
    found = app.objects.list_objects(f"{keys.ENROLL_PREFIX}{name}/", limit=1)
    if not found:
        raise PageError(404, "No photo", f"{name} has no enrolment photo.")
    return see_other(presign(app, found[0].key))


@router.get("/snapshots/{door}/{camera}/{upload_id}")
def snapshot(
    door: str, camera: str, upload_id: str, request: Request,
    session: SignedIn,
) -> Response:
    """The door snapshot, by a short-lived presigned GET (the bucket stays private)."""
    app = console(request)
    try:
        prefix = keys.upload_object_key(door, camera, upload_id, "x")[:-1]
    except BadMessageError as exc:
        raise PageError(404, "Unknown snapshot", str(exc)) from exc
    found = app.objects.list_objects(prefix, limit=1)
    if not found:
        raise PageError(404, "Unknown snapshot", "That snapshot is gone (revoked or expired).")
    return see_other(presign(app, found[0].key))


def presign(app: Console, key: str) -> str:
    return app.objects.presigned_get(
        key, app.settings.console_presign_s, app.settings.console_s3_endpoint
    )
