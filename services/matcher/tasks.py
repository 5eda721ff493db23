"""The thin Celery task ``facegate.match``: decode, call the service, done.

A message that does not decode is logged and dropped, but when its
``upload_id`` and ``door`` can still be read, the upload is denied with
``internal_error`` so the door hears an answer. Retries follow
:mod:`facegate.adapters.retries`; when they are spent (or deciding failed
in a way the service could not turn into a DENY itself) the upload is denied
with ``internal_error``; a later redelivery cannot add a second decision.
Each recorded decision is counted once (:func:`observe`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from facegate.adapters import metrics
from facegate.adapters.celery_app import MATCH_TASK
from facegate.adapters.retries import MAX_RETRIES, run_with_retries
from facegate.core.errors import BadMessageError
from facegate.core.messages import MatchRequest, legible_ids
from services.matcher.app import MatcherApp
from services.matcher.service import Outcome

log = logging.getLogger(__name__)


def observe(outcome: Outcome) -> Outcome:
    """Count a recorded decision and its latencies (a redelivery records
    nothing, so each upload is counted once)."""
    if outcome.recorded and outcome.event is not None:
        metrics.observe_decision(outcome.event)
    return outcome


def register(celery: Celery, app: MatcherApp) -> Task:
    """Register ``facegate.match`` on ``celery``, bound to ``app``."""

    @celery.task(name=MATCH_TASK, bind=True, max_retries=MAX_RETRIES, acks_late=True)  # type: ignore[misc,untyped-decorator]
    def match(self: Task, payload: Any) -> None:
        try:
            request = MatchRequest.from_json(payload)
        except BadMessageError as exc:
            log.error("dropping undecodable match request: %s", exc)
            found = legible_ids(payload)
            if found is not None:
                observe(app.service.deny(MatchRequest.denied(*found)))
            return
        run_with_retries(
            self,
            lambda: observe(app.service.handle(request)),
            what=f"upload {request.upload_id}",
            give_up=lambda why: observe(app.service.deny(request)),
        )

    return match  # type: ignore[no-any-return]
