"""The Log and Live pages' rows: audit entries filtered and paged (no HTTP).

:func:`query` walks the audit stream newest first from a cursor, in
chunks, keeping the entries that pass a :class:`LogFilter`, until a page is
full or ``scan_limit`` entries were looked at; the next page starts after
the last entry looked at, so paging never skips or repeats one.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from facegate.adapters.redis_audit import AuditEntry

Reader = Callable[..., list[AuditEntry]]
"""``audit_entries(max_id=, min_id=, count=)`` of the store."""

CSV_COLUMNS = (
    "stream_id", "time_utc", "kind", "door", "camera", "decision", "reason", "person",
    "distance", "latency_ms", "upload_id", "approach", "actor", "action", "target", "detail",
)


@dataclass(frozen=True)
class LogFilter:
    door: str = ""
    person: str = ""
    decision: str = ""
    """``OPEN``, ``DENY``, ``admin`` or empty (all)."""
    reason: str = ""
    since: float | None = None
    until: float | None = None

    def matches(self, entry: AuditEntry) -> bool:
        if entry.action is not None:
            a = entry.action
            if self.decision and self.decision != "admin":
                return False
            if self.reason:
                return False
            return (not self.door or a.target == self.door) and (
                not self.person or a.target == self.person
            )
        e = entry.event or {}
        if self.decision == "admin":
            return False
        return (
            (not self.door or e.get("door") == self.door)
            and (not self.person or e.get("person") == self.person)
            and (not self.decision or e.get("decision") == self.decision)
            and (not self.reason or e.get("reason") == self.reason)
        )


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    """Where the next (older) page starts; ``None``: this was the last."""


def _bounds(flt: LogFilter, cursor: str | None) -> tuple[str, str]:
    max_id = f"({cursor}" if cursor else (
        str(int(flt.until * 1000)) if flt.until is not None else "+"
    )
    min_id = str(int(flt.since * 1000)) if flt.since is not None else "-"
    return max_id, min_id


def query(
    read: Reader, flt: LogFilter, *, cursor: str | None = None, page_size: int = 50,
    scan_limit: int = 20_000, chunk: int = 500,
) -> Page:
    max_id, min_id = _bounds(flt, cursor)
    rows: list[dict[str, Any]] = []
    scanned = 0
    last: str | None = None
    while scanned < scan_limit:
        entries = read(max_id=max_id, min_id=min_id, count=chunk)
        if not entries:
            return Page(rows, None)
        for entry in entries:
            scanned += 1
            last = entry.stream_id
            if flt.matches(entry):
                rows.append(row(entry))
                if len(rows) >= page_size:
                    return Page(rows, last)
        max_id = f"({last}"
        if len(entries) < chunk:
            return Page(rows, None)
    return Page(rows, last)


def row(entry: AuditEntry) -> dict[str, Any]:
    """One entry as the pages show it."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.at))
    if entry.action is not None:
        a = entry.action
        return {
            "stream_id": entry.stream_id, "time_utc": when, "kind": "admin",
            "decision": "admin", "actor": a.actor, "action": a.action.value,
            "target": a.target, "detail": a.describe(),
        }
    e = entry.event or {}
    return {"stream_id": entry.stream_id, "time_utc": when, **event_fields(e)}


def event_fields(e: dict[str, Any]) -> dict[str, Any]:
    """A decision's fields for a row or a live event (with its latency and
    the console's snapshot URL)."""
    stamps = e.get("stamps") or {}
    uploaded = stamps.get("uploaded") if isinstance(stamps, dict) else None
    latency = None
    if isinstance(uploaded, int | float) and isinstance(e.get("issued_at"), int | float):
        latency = round(1000.0 * (float(e["issued_at"]) - float(uploaded)))
    distance = e.get("distance")
    camera = e.get("camera")
    return {
        "kind": "decision",
        "door": e.get("door", ""),
        "camera": camera or "",
        "decision": e.get("decision", ""),
        "reason": e.get("reason", ""),
        "person": e.get("person") or "",
        "distance": f"{distance:.3f}" if isinstance(distance, int | float) else "",
        "latency_ms": "" if latency is None else str(latency),
        "upload_id": e.get("upload_id", ""),
        "approach": e.get("approach") or "",
        "door_event": bool(e.get("stream_id")),
        "snapshot": (
            f"/snapshots/{e.get('door')}/{camera}/{e.get('upload_id')}" if camera else ""
        ),
    }


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        # a cell starting with = + - @ would be a formula in a spreadsheet
        writer.writerow({
            k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in r.items()
        })
    return out.getvalue()


__all__ = ["CSV_COLUMNS", "LogFilter", "Page", "event_fields", "query", "row", "to_csv"]
