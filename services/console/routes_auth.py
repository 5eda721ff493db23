"""Sign-in and sign-out (``/login``, ``/logout``).

The sign-in form carries a CSRF token of its own (the double-submit of a
cookie made when the form is shown), so a page elsewhere cannot sign a
browser in to an account of its choosing."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facegate.core.operators import csrf_matches
from services.console.auth import Refusal, SignInRefusedError
from services.console.web import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    console,
    current,
    form_of,
    render,
    see_other,
)

router = APIRouter()


def _safe_next(value: object) -> str:
    """Only a path of this site (no ``//host``, no scheme)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value if "\\" not in value else "/doors"
    return "/doors"


def _login_page(request: Request, status: int, message: str = "", nxt: str = "/doors") -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, csrf=token, message=message, next=nxt)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
        secure=console(request).settings.secure_cookies,
    )
    return response


@router.get("/")
def home() -> Response:
    return see_other("/doors")


@router.get("/login")
def login_form(request: Request, next: str = "/doors") -> Response:
    return _login_page(request, 200, nxt=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    nxt = _safe_next(form.get("next"))
    given = form.get("csrf")
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), given if isinstance(
        given, str) else None):
        return _login_page(request, 403, "The sign-in form expired: try again.", nxt)
    name = str(form.get("username") or "")[:64]
    password = str(form.get("password") or "")[:1024]
    ip = request.client.host if request.client else "unknown"
    app = console(request)
    try:
        token, _ = await run_in_threadpool(app.auth.sign_in, name, password, ip)
    except SignInRefusedError as exc:
        if exc.why is Refusal.LOCKED:
            minutes = max(1, app.settings.console_lockout_s // 60)
            return _login_page(
                request, 429,
                f"Too many failed sign-ins: locked for {minutes} minute(s) after the last one.",
                nxt,
            )
        return _login_page(request, 401, "Wrong name or password.", nxt)
    response = see_other(nxt)
    response.set_cookie(
        COOKIE, token, max_age=app.settings.console_session_max_s, httponly=True,
        samesite="strict", secure=app.settings.secure_cookies, path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await run_in_threadpool(current, request)
    form = await form_of(request)
    console(request).auth.require_csrf(session, str(form.get("csrf") or ""))
    await run_in_threadpool(console(request).auth.sign_out, request.cookies.get(COOKIE))
    response = see_other("/login")
    response.delete_cookie(COOKIE, path="/")
    return response
