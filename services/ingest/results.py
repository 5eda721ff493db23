"""What ingest's use cases answer (:class:`~services.ingest.service.IngestApp`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Presigned:
    upload_id: str
    key: str
    url: str
    expires_in: int


@dataclass(frozen=True)
class Uploaded:
    upload_id: str
    key: str


@dataclass(frozen=True)
class EventResult:
    """What one webhook body led to."""

    enqueued: list[str] = field(default_factory=list)
    """Upload ids sent on (to the encoder, or denied as unclaimed)."""
    duplicates: int = 0
    ignored: int = 0

    def to_dict(self) -> dict[str, Any]:
        counts = {"duplicates": self.duplicates, "ignored": self.ignored}
        return {"enqueued": len(self.enqueued), "upload_ids": self.enqueued, **counts}


__all__ = ["EventResult", "Presigned", "Uploaded"]
