"""The Celery configuration every worker and sender shares.

Services never import each other: they send by task *name* to a named queue
with :func:`send_encode` / :func:`send_match`, and each worker registers its
own task under that name. The single argument of both tasks is the message's
JSON text (``EncodeRequest`` / ``MatchRequest``), so the message classes, not
Celery, own validation and versioning.

Delivery is at least once: ``task_acks_late`` acknowledges a message only
after the task returns, and ``task_reject_on_worker_lost`` re-queues the task
of a pool child that died. The Redis transport re-delivers a message that is
still unacknowledged after ``visibility_timeout`` seconds, which is what
happens to the tasks a whole worker held when it was killed. Celery's default
is one hour: a door upload would then be decided an hour late (as ``timeout``
by the matcher's deadline). We set it to ``FACEGATE_VISIBILITY_TIMEOUT_S``
(60 s by default): far longer than any task runs (an encoder batch takes well
under a second, a match a few milliseconds), so a slow but live worker does
not see its task handed to another, and short enough that a crashed worker's
uploads are re-delivered within a minute. A duplicate that still slips
through is harmless: the matcher's decision is guarded by ``SET NX``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from facegate.core.messages import EncodeRequest, MatchRequest
from facegate.runtime.settings import CommonSettings

ENCODE_TASK = "facegate.encode"
MATCH_TASK = "facegate.match"
ENCODE_QUEUE = "encode"
MATCH_QUEUE = "match"


def make_celery(settings: CommonSettings, name: str) -> Celery:
    """A configured Celery app (nothing connects until it is used)."""
    app = Celery(name, broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_routes={
            ENCODE_TASK: {"queue": ENCODE_QUEUE},
            MATCH_TASK: {"queue": MATCH_QUEUE},
        },
        task_default_queue=MATCH_QUEUE,
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        enable_utc=True,
        timezone="UTC",
    )
    return app


def send_encode(app: Celery, request: EncodeRequest) -> Any:
    """Queue one upload for the encoder (task ``facegate.encode``)."""
    return app.send_task(
        ENCODE_TASK, args=[request.to_json().decode()], queue=ENCODE_QUEUE, ignore_result=True
    )


def send_match(app: Celery, request: MatchRequest) -> Any:
    """Queue one probe for the matcher (task ``facegate.match``)."""
    return app.send_task(
        MATCH_TASK, args=[request.to_json().decode()], queue=MATCH_QUEUE, ignore_result=True
    )


__all__ = [
    "ENCODE_QUEUE",
    "ENCODE_TASK",
    "MATCH_QUEUE",
    "MATCH_TASK",
    "make_celery",
    "send_encode",
    "send_match",
]
