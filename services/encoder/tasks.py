"""The thin Celery task ``facegate.encode``: decode the message, hand it to
this process's batcher, wait for its batch.

The worker runs the ``threads`` pool with more threads than the batch size,
so up to B tasks wait in the batcher at once while the previous batch runs.
Retries follow :mod:`facegate.adapters.retries`; when they are spent, an
access upload is still sent to the matcher with ``error=internal_error`` so
the door hears DENY, and an enrolment gets an error reply. An undecodable
message whose ``upload_id`` and ``door`` are legible is denied the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from facegate.adapters.celery_app import ENCODE_TASK
from facegate.adapters.retries import MAX_RETRIES, run_with_retries
from facegate.core.errors import BadMessageError
from facegate.core.messages import EncodeRequest, MatchRequest, Reason, UploadKind, legible_ids
from services.encoder.app import EncoderApp
from services.encoder.service import enrol_reply

log = logging.getLogger(__name__)

BATCH_TIMEOUT_S = 120.0
"""How long a task waits for its batch (a first batch can include TF's tracing)."""


def give_up(app: EncoderApp, request: EncodeRequest, why: str) -> None:
    """The upload cannot be encoded: make sure its requester hears it."""
    log.error("upload %s: %s; answering internal_error", request.upload_id, why)
    engine = app.service.engine
    if request.kind is UploadKind.ENROLL:
        reply = enrol_reply(
            request, [], engine.model_id, engine.dimension, Reason.INTERNAL_ERROR, why
        )
        app.store.push_reply(request.upload_id, reply)
        return
    assert request.door is not None  # an access request always has one
    app.send_match(
        MatchRequest.denied(
            request.upload_id,
            request.door,
            request.camera,
            badge=request.badge,
            model_id=engine.model_id,
            stamps=request.stamps,
            approach=request.approach,
        )
    )


def register(celery: Celery, app: EncoderApp) -> Task:
    """Register ``facegate.encode`` on ``celery``, bound to ``app``."""

    @celery.task(name=ENCODE_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True)  # type: ignore[misc,untyped-decorator]
    def encode(self: Task, payload: Any) -> None:
        try:
            request = EncodeRequest.from_json(payload)
        except BadMessageError as exc:
            log.error("dropping undecodable encode request: %s", exc)
            ids = legible_ids(payload)
            if ids is not None:
                app.send_match(MatchRequest.denied(*ids))
            return
        run_with_retries(
            self,
            lambda: app.batcher.submit(request).result(timeout=BATCH_TIMEOUT_S),
            what=f"upload {request.upload_id}",
            give_up=lambda why: give_up(app, request, why),
        )

    return encode  # type: ignore[no-any-return]
