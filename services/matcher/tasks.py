"""The thin Celery task ``facegate.match``: decode, call the service, done.

The matcher app (Redis client, gallery cache) is built once per worker
process, on its first task. A message that does not decode is logged and
dropped, but when its ``upload_id`` and ``door`` can still be read, the
upload is denied with ``internal_error`` so the door hears an answer.
Transient errors retry with backoff; when the retries are spent the upload is
denied with ``internal_error`` (a later redelivery cannot add a second
decision).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task

from facegate.adapters.celery_app import MATCH_TASK
from facegate.core.errors import BadMessageError, TransientError
from facegate.core.messages import MatchRequest, Reason, legible_ids
from facegate.runtime.settings import MatcherSettings
from services.matcher.app import MatcherApp, build

log = logging.getLogger(__name__)

MAX_RETRIES = 5

_lock = threading.Lock()
_apps: dict[int, MatcherApp] = {}


def matcher_app(settings: MatcherSettings) -> MatcherApp:
    """This process's matcher app, built on first use."""
    key = id(settings)
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = build(settings)
            _apps[key] = app
        return app


def register(celery: Celery, settings: MatcherSettings) -> Task:
    """Register ``facegate.match`` on ``celery``; returns the task."""

    @celery.task(name=MATCH_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True)  # type: ignore[misc,untyped-decorator]
    def match(self: Task, payload: Any) -> None:
        app = matcher_app(settings)
        try:
            request = MatchRequest.from_json(payload)
        except BadMessageError as exc:
            log.error("dropping undecodable match request: %s", exc)
            found = legible_ids(payload)
            if found is not None:
                app.service.deny(found[0], found[1], found[2], Reason.INTERNAL_ERROR)
            return
        try:
            app.service.handle(request)
        except TransientError as exc:
            if self.request.retries >= MAX_RETRIES:
                log.error("upload %s: retries spent (%s): DENY", request.upload_id, exc)
                if request.door is not None:
                    app.service.deny(
                        request.upload_id,
                        request.door,
                        request.camera,
                        Reason.INTERNAL_ERROR,
                        dict(request.stamps),
                    )
                return
            delay = min(0.2 * 2**self.request.retries, 5.0)
            log.warning("upload %s: %s; retry in %.1f s", request.upload_id, exc, delay)
            raise self.retry(exc=exc, countdown=delay) from exc
        except Exception:
            # handle() already turns failures of deciding into DENY; this is
            # a failure while building or recording the event itself.
            log.exception("upload %s: unexpected failure; trying DENY", request.upload_id)
            if request.door is not None:
                app.service.deny(
                    request.upload_id, request.door, request.camera, Reason.INTERNAL_ERROR
                )

    return match  # type: ignore[no-any-return]
