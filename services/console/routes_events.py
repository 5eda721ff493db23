"""The Live page (server-sent events from the door streams) and the Log
page (the audit stream, filtered, paged, as CSV)."""

from __future__ import annotations

import asyncio
import calendar
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from facegate.adapters.redis_codec import text
from facegate.core import keys
from facegate.core.messages import Reason
from services.console.logview import LogFilter, event_fields, query, to_csv
from services.console.web import COOKIE, PageError, SignedIn, console, log, render

router = APIRouter()

PAGE_SIZE = 50
CSV_LIMIT = 10_000
KEEPALIVE_S = 15.0


def _time(value: str, name: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    raise PageError(400, "Bad filter", f"{name}: {value!r} is not a time (YYYY-MM-DDTHH:MM, UTC)")


def _filter(request: Request) -> LogFilter:
    q = request.query_params
    decision = q.get("decision", "")
    if decision not in ("", "OPEN", "DENY", "admin"):
        raise PageError(400, "Bad filter", f"decision {decision!r}: OPEN, DENY or admin")
    reason = q.get("reason", "")
    if reason and reason not in {r.value for r in Reason}:
        raise PageError(400, "Bad filter", f"unknown reason {reason!r}")
    return LogFilter(
        door=q.get("door", "")[:64], person=q.get("person", "")[:64], decision=decision,
        reason=reason, since=_time(q.get("since", ""), "since"),
        until=_time(q.get("until", ""), "until"),
    )


@router.get("/log")
async def log_page(request: Request, session: SignedIn) -> Response:
    app = console(request)
    flt = _filter(request)
    cursor = request.query_params.get("before") or None
    if cursor is not None and not _is_stream_id(cursor):
        raise PageError(400, "Bad page", "malformed page cursor")
    page = await run_in_threadpool(
        query, app.store.audit_entries, flt, cursor=cursor, page_size=PAGE_SIZE
    )
    params = {k: v for k, v in request.query_params.items() if k != "before" and v}
    return render(
        request, "log.html", page=page, flt=flt, params=params, query=dict(request.query_params),
        doors=app.store.list_doors(), reasons=[r.value for r in Reason],
        people=app.store.people(),
    )


@router.get("/log.csv")
async def log_csv(request: Request, session: SignedIn) -> Response:
    app = console(request)
    flt = _filter(request)
    page = await run_in_threadpool(
        query, app.store.audit_entries, flt, page_size=CSV_LIMIT, scan_limit=100_000
    )
    return Response(
        to_csv(page.rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="facegate-log.csv"'},
    )


@router.get("/live")
def live_page(request: Request, session: SignedIn) -> Response:
    app = console(request)
    return render(request, "live.html", doors=app.store.list_doors())


def _is_stream_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit() and len(value) < 42


async def _last_ids(client: Any, doors: list[str]) -> dict[str, str]:
    """Where each door's stream is now: the Live page shows what comes after."""
    out = {}
    for door in doors:
        newest = await client.xrevrange(keys.door_stream(door), count=1)
        out[door] = str(text(newest[0][0])) if newest else "0-0"
    return out


async def _read_new(client: Any, last: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """Wait up to 1 s for new door events: ``(door, stream id, event)``."""
    if not last:
        await asyncio.sleep(1.0)
        return []
    streams = {keys.door_stream(d): i for d, i in last.items()}
    got = await client.xread(streams, count=100, block=1000)
    out = []
    for stream, entries in got or []:
        door = str(text(stream)).split(":")[2]
        for sid, fields in entries:
            sid_s = str(text(sid))
            last[door] = sid_s
            try:
                out.append((door, sid_s, json.loads(fields[b"event"])["event"]))
            except (KeyError, ValueError, TypeError):
                continue
    return out


@router.get("/live/events")
async def live_events(request: Request, session: SignedIn) -> Response:
    """``text/event-stream``: one ``decision`` event per door event, JSON."""
    app = console(request)
    only = request.query_params.get("door") or None

    async def stream() -> AsyncIterator[bytes]:
        # one asyncio connection per viewer: waiting for events holds no thread
        client = aioredis.Redis.from_url(app.settings.redis_url, socket_timeout=10.0)
        try:
            async for chunk in _events(client):
                yield chunk
        except redis.RedisError as exc:
            log.warning("live events: %s", exc)
            yield b"event: unavailable\ndata: {}\n\n"
        finally:
            await client.aclose()

    async def _events(client: Any) -> AsyncIterator[bytes]:
        doors = [d for d in await run_in_threadpool(app.store.list_doors) if not only or d == only]
        last = await _last_ids(client, doors)
        quiet_since = time.monotonic()
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            if await run_in_threadpool(app.auth.session, request.cookies.get(COOKIE)) is None:
                yield b"event: signed-out\ndata: {}\n\n"
                return
            new = await _read_new(client, last)
            for door, sid, event in new:
                payload = {"stream_id": sid, "at": event.get("issued_at"), **event_fields(event)}
                payload["time_utc"] = time.strftime(
                    "%H:%M:%S", time.gmtime(float(event.get("issued_at") or 0))
                )
                data = json.dumps(payload)
                yield f"id: {door}/{sid}\nevent: decision\ndata: {data}\n\n".encode()
            if new:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keepalive\n\n"
            await asyncio.sleep(0)

    return StreamingResponse(
        stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


__all__ = ["router"]
