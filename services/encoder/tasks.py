"""The thin Celery task ``facegate.encode``: decode the message, hand it to
this process's batcher, wait for its batch.

The worker runs the ``threads`` pool with more threads than the batch size,
so up to B tasks wait in the batcher at once while the previous batch runs.
Transient failures (object store or Redis unreachable, broker refusing the
match task) retry with backoff; when the retries are spent, an access upload
is still sent to the matcher with ``error=internal_error`` so the door hears
DENY, and an enrolment gets an error reply. An undecodable message whose
``upload_id`` and ``door`` are legible is denied the same way.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task

from facegate.adapters.celery_app import ENCODE_TASK, send_match
from facegate.core.errors import BadMessageError, TransientError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind, legible_ids
from facegate.runtime.settings import EncoderSettings
from services.encoder.app import EncoderApp, build
from services.encoder.service import enrol_reply

log = logging.getLogger(__name__)

MAX_RETRIES = 5
BATCH_TIMEOUT_S = 120.0
"""How long a task waits for its batch (a first batch can include TF's tracing)."""

_lock = threading.Lock()
_apps: dict[int, EncoderApp] = {}


def encoder_app(settings: EncoderSettings) -> EncoderApp:
    """This process's encoder app (model included), built on first use."""
    key = id(settings)
    with _lock:
        app = _apps.get(key)
        if app is None:
            app = build(settings)
            _apps[key] = app
        return app


def give_up(celery: Celery, app: EncoderApp, request: EncodeRequest, why: str) -> None:
    """The upload cannot be encoded: make sure its requester hears it."""
    log.error("upload %s: %s; answering internal_error", request.upload_id, why)
    if request.kind is UploadKind.ENROLL:
        reply = enrol_reply(
            request, [], app.service.engine.model_id, app.service.engine.dimension,
            Reason.INTERNAL_ERROR, why,
        )
        app.store.push_reply(request.upload_id, reply)
        return
    send_match(
        celery,
        MatchRequest(
            upload_id=request.upload_id,
            door=request.door,
            camera=request.camera,
            badge=request.badge,
            error=Reason.INTERNAL_ERROR,
            model_id=app.service.engine.model_id,
            stamps=dict(request.stamps),
        ),
    )


def register(celery: Celery, settings: EncoderSettings) -> Task:
    """Register ``facegate.encode`` on ``celery``; returns the task."""

    @celery.task(name=ENCODE_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True)  # type: ignore[misc,untyped-decorator]
    def encode(self: Task, payload: Any) -> None:
        try:
            request = EncodeRequest.from_json(payload)
        except BadMessageError as exc:
            log.error("dropping undecodable encode request: %s", exc)
            ids = legible_ids(payload)
            if ids is not None:
                upload_id, door, camera = ids
                send_match(
                    celery,
                    MatchRequest(
                        upload_id=upload_id, door=door, camera=camera,
                        error=Reason.INTERNAL_ERROR,
                    ),
                )
            return
        app = encoder_app(settings)
        try:
            app.batcher.submit(request).result(timeout=BATCH_TIMEOUT_S)
        except TransientError as exc:
            if self.request.retries >= MAX_RETRIES:
                give_up(celery, app, request, f"retries spent ({exc})")
                return
            delay = min(0.2 * 2**self.request.retries, 5.0)
            log.warning("upload %s: %s; retry in %.1f s", request.upload_id, exc, delay)
            raise self.retry(exc=exc, countdown=delay) from exc
        except Exception as exc:
            log.exception("upload %s: encoding failed", request.upload_id)
            give_up(celery, app, request, f"encoding failed: {exc}")

    return encode  # type: ignore[no-any-return]
