"""The camera side of ingest: ask for a presigned URL, PUT the snapshot.

::

    cam = CameraClient("http://127.0.0.1:18700", token)
    ticket = cam.presign("front", "cam1", badge="alice")
    cam.put(ticket, jpeg_bytes)                  # straight to the object store
    # or, for cameras that cannot speak S3:
    upload_id = cam.upload("front", "cam1", jpeg_bytes, badge="alice")
    # several frames of one approach (the door opens at most once for them):
    burst = cam.burst("lobby", "cam1", [frame1, frame2, frame3])

Standard library only (a camera gateway should not need our stack).
Failures raise :class:`CameraError` with the HTTP status and the server's
error code; 503 means "retry later" (Redis, the store or the broker is down).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from facegate.core.errors import FacegateError
from facegate.core.keys import IMAGE_EXTENSIONS


class CameraError(FacegateError):
    """Ingest or the object store refused or failed a camera request."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Ticket:
    """A presigned upload: PUT the image to ``url`` before it expires."""

    upload_id: str
    key: str
    url: str
    expires_in: int
    issued: float


@dataclass(frozen=True)
class Burst:
    """Frames sent for one approach: their shared approach id and uploads."""

    approach: str
    upload_ids: tuple[str, ...]


CONTENT_TYPES = IMAGE_EXTENSIONS
"""Extension -> content type of the images ingest accepts."""


def new_approach_id() -> str:
    """A fresh approach id (32 hex digits, as the services expect)."""
    return uuid.uuid4().hex


class CameraClient:
    """Talks to ingest with the camera token."""

    def __init__(self, ingest_url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.ingest_url = ingest_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _request(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            code, message = "http_error", payload.decode(errors="replace")[:300]
            try:
                doc: Any = json.loads(payload)
                code, message = str(doc.get("error", code)), str(doc.get("message", message))
            except (ValueError, AttributeError):
                pass
            raise CameraError(exc.code, code, message) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise CameraError(0, "unreachable", f"{url}: {exc}") from exc

    def presign(
        self,
        door: str,
        camera: str,
        badge: str | None = None,
        ext: str = "jpg",
        approach: str | None = None,
    ) -> Ticket:
        """A presigned PUT for one snapshot at ``door``; ``badge`` is the
        claimed person and ``approach`` the approach the frame belongs to
        (both bound server-side to this exact upload)."""
        doc_in: dict[str, Any] = {"camera": camera, "badge": badge, "ext": ext}
        if approach is not None:
            doc_in["approach"] = approach
        body = json.dumps(doc_in).encode()
        issued = time.time()
        _, payload = self._request(
            "POST",
            f"{self.ingest_url}/v1/doors/{urllib.parse.quote(door, safe='')}/presign",
            body,
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        doc = json.loads(payload)
        return Ticket(
            upload_id=str(doc["upload_id"]),
            key=str(doc["key"]),
            url=str(doc["url"]),
            expires_in=int(doc["expires_in"]),
            issued=issued,
        )

    def put(self, ticket: Ticket, data: bytes, content_type: str | None = None) -> None:
        """Upload ``data`` to the presigned URL."""
        ext = ticket.key.rsplit(".", 1)[-1].lower()
        kind = content_type or CONTENT_TYPES.get(ext, "application/octet-stream")
        self._request("PUT", ticket.url, data, {"Content-Type": kind})

    def upload(
        self,
        door: str,
        camera: str,
        data: bytes,
        badge: str | None = None,
        content_type: str = "image/jpeg",
        approach: str | None = None,
    ) -> str:
        """Direct upload through ingest; returns the upload id."""
        query = {"camera": camera}
        if badge:
            query["badge"] = badge
        if approach:
            query["approach"] = approach
        url = (
            f"{self.ingest_url}/v1/doors/{urllib.parse.quote(door, safe='')}/uploads?"
            + urllib.parse.urlencode(query)
        )
        _, payload = self._request(
            "POST",
            url,
            data,
            {"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        return str(json.loads(payload)["upload_id"])

    def burst(
        self,
        door: str,
        camera: str,
        frames: Sequence[bytes],
        badge: str | None = None,
        *,
        ext: str = "jpg",
        direct: bool = False,
        approach: str | None = None,
    ) -> Burst:
        """Send ``frames`` (snapshots of one passage, in order) as one
        approach: presign + PUT each (or direct uploads)."""
        if not frames:
            raise ValueError("a burst needs at least one frame")
        approach = approach or new_approach_id()
        ids: list[str] = []
        for data in frames:
            if direct:
                kind = CONTENT_TYPES.get(ext, "image/jpeg")
                ids.append(self.upload(door, camera, data, badge, kind, approach=approach))
            else:
                ticket = self.presign(door, camera, badge, ext, approach=approach)
                self.put(ticket, data)
                ids.append(ticket.upload_id)
        return Burst(approach, tuple(ids))


__all__ = ["CONTENT_TYPES", "Burst", "CameraClient", "CameraError", "Ticket", "new_approach_id"]
