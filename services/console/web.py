"""What every console route shares: templates, the signed-in operator, CSRF
checks, and the answers to errors.

HTTP statuses the console answers (docs/DESIGN.md, "Console"):

- 303 to ``/login`` for a page asked for without a valid session (expired,
  signed out, unknown cookie); 401 for a form sent or an event stream asked
  for without one (the page says to sign in again);
- 403 for a form whose CSRF token is missing or wrong, and for a change
  asked for by a viewer;
- 404 for an unknown door, person or snapshot;
- 400 for a form that does not validate, 413 for a body over the limit,
  415 for an upload that is not an image, 422 for photos the encoder
  refused (each with its reason), 503 when Redis, the object store or the
  encoder does not answer; every one as a page naming the problem.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from facegate.core.operators import Session
from services.console.auth import CsrfRefusedError, ForbiddenError
from services.console.deps import Console

log = logging.getLogger("services.console")

COOKIE = "facegate_session"
LOGIN_CSRF_COOKIE = "facegate_login_csrf"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class NotSignedInError(Exception):
    """No valid session (HTTP 303 to /login for a page, 401 otherwise)."""


class PageError(Exception):
    """An error page with ``status`` and a message for the operator."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def current(request: Request) -> Session:
    """The signed-in operator (a FastAPI dependency)."""
    session = console(request).auth.session(request.cookies.get(COOKIE))
    if session is None:
        raise NotSignedInError()
    request.state.session = session
    return session


SignedIn = Annotated[Session, Depends(current)]
"""A route parameter: the signed-in operator."""


async def form_of(request: Request) -> Any:
    form = await request.form(max_files=64, max_fields=200)
    return form


async def changing(request: Request) -> tuple[Session, Any]:
    """A state-changing form: signed in, an admin, and the right CSRF token
    (checked in that order, before anything is written)."""
    session = await run_in_threadpool(current, request)
    form = await form_of(request)
    auth = console(request).auth
    token = form.get("csrf")
    auth.require_csrf(session, token if isinstance(token, str) else None)
    auth.require_admin(session)
    return session, form


def render(
    request: Request, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    session: Session | None = getattr(request.state, "session", None)
    return templates.TemplateResponse(
        request,
        name,
        {"session": session, "can_change": bool(session and session.role.can_change), **context},
        status_code=status,
    )


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, title=title, message=message)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def not_signed_in(request: Request) -> Response:
    if request.method == "GET" and not request.url.path.startswith("/live/events"):
        return see_other(f"/login?next={request.url.path}")
    return error_page(
        request, 401, "Signed out", "Your session has expired or you are signed out: sign in again."
    )


def forbidden(request: Request, exc: Exception) -> Response:
    if isinstance(exc, CsrfRefusedError):
        return error_page(request, 403, "Form refused", str(exc))
    assert isinstance(exc, ForbiddenError)
    return error_page(request, 403, "Not allowed", str(exc))


__all__ = [
    "COOKIE",
    "LOGIN_CSRF_COOKIE",
    "NotSignedInError",
    "PageError",
    "SignedIn",
    "changing",
    "console",
    "current",
    "error_page",
    "forbidden",
    "not_signed_in",
    "render",
    "see_other",
    "templates",
]
