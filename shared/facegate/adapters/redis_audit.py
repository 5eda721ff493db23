"""Admin records in the audit stream, and the stream read whole (both kinds).

The audit stream (``facegate:audit``) holds every door decision (fields
``door``, ``upload_id``, ``decision``, ``reason``, ``id``, ``event``: the
signed wire, written by the decision scripts) and, since the console, every
administrative change (``kind=admin``, ``actor``, ``action``, ``target``,
``at``, ``detail``: :class:`facegate.core.audit.AdminAction`).
:meth:`RedisAudit.record_admin` writes the second kind; readers of decisions
(``read_log``) skip it; :meth:`RedisAudit.audit_entries` returns both, newest
first, for the Log page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from facegate.adapters.redis_codec import text, translated
from facegate.core import keys
from facegate.core.audit import ADMIN_KIND, KIND_FIELD, AdminAction
from facegate.core.errors import BadMessageError


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit stream: a decision (``event``, the signed
    event's fields) or an admin record (``action``)."""

    stream_id: str
    at: float
    event: dict[str, Any] | None = None
    action: AdminAction | None = None

    @property
    def kind(self) -> str:
        return ADMIN_KIND if self.action is not None else "decision"


def stream_ms(stream_id: str) -> float:
    """The unix time (seconds) of a stream id ``<ms>-<seq>``."""
    return int(stream_id.split("-", 1)[0]) / 1000.0


def parse_entry(stream_id: str, raw: dict[bytes, bytes]) -> AuditEntry | None:
    """An entry of the audit stream; ``None`` for one that cannot be read
    (it is skipped, never fatal)."""
    fields = {str(text(k)): str(text(v)) for k, v in raw.items()}
    try:
        if fields.get(KIND_FIELD) == ADMIN_KIND:
            action = AdminAction.from_fields(fields)
            return AuditEntry(stream_id, action.at, action=action)
        event = json.loads(fields["event"])["event"]
        if not isinstance(event, dict):
            return None
        return AuditEntry(stream_id, float(event.get("issued_at", stream_ms(stream_id))), event)
    except (BadMessageError, KeyError, ValueError, TypeError):
        return None


class RedisAudit:
    """Mixed into ``RedisStore``, which sets these attributes."""

    client: redis.Redis
    stream_maxlen: int

    def record_admin(self, action: AdminAction) -> str:
        """Append an admin record to the audit stream; its stream id."""
        with translated("record_admin"):
            sid = self.client.xadd(
                keys.AUDIT_STREAM,
                action.to_fields(),  # type: ignore[arg-type]
                maxlen=self.stream_maxlen,
                approximate=True,
            )
        return str(text(sid))  # type: ignore[arg-type]

    def admin_actions(self, count: int = 20) -> list[tuple[str, AdminAction]]:
        """The newest ``count`` admin records (looking at up to 50 x ``count``
        entries), newest first."""
        out: list[tuple[str, AdminAction]] = []
        for entry in self.audit_entries(count=max(count, 1) * 50):
            if entry.action is not None:
                out.append((entry.stream_id, entry.action))
                if len(out) >= count:
                    break
        return out

    def audit_entries(
        self, *, max_id: str = "+", min_id: str = "-", count: int = 100
    ) -> list[AuditEntry]:
        """Up to ``count`` entries between ``min_id`` and ``max_id`` (both
        inclusive; ``(id`` excludes), newest first, of both kinds."""
        with translated("audit_entries"):
            raw: Any = self.client.xrevrange(keys.AUDIT_STREAM, max=max_id, min=min_id, count=count)
        out = []
        for sid, fields in raw:
            entry = parse_entry(str(text(sid)), fields)
            if entry is not None:
                out.append(entry)
        return out


__all__ = ["AuditEntry", "RedisAudit", "parse_entry", "stream_ms"]
