"""Retry policy of the Celery tasks, in one place.

A task body runs under :func:`run_with_retries`: a
:class:`~facegate.core.errors.TransientError` (Redis, the object store or the
broker briefly unavailable) retries the task with exponential backoff
(0.2 s, 0.4 s, ... at most 5 s); once ``task.max_retries`` retries are spent,
or on any other exception, ``give_up(why)`` runs, which answers the upload's
requester (DENY ``internal_error`` for a door, an error reply for an
enrolment) so that nothing waits forever. Both are counted
(``facegate_task_retries_total``, ``facegate_task_give_ups_total``, by task
name). A retry re-queues the same message, so tasks must be idempotent
(they are: see the matcher's ``SET NX`` gate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from facegate.adapters.metrics import GIVE_UPS, RETRIES
from facegate.core.errors import TransientError

log = logging.getLogger(__name__)

MAX_RETRIES = 5
"""Retries of a task before it gives up (about 6 s of backoff in all)."""

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0


def backoff_s(retries: int) -> float:
    """Delay before retry number ``retries + 1``."""
    return float(min(FIRST_DELAY_S * 2**retries, MAX_DELAY_S))


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", None) or "unknown")


def run_with_retries(
    task: Any, work: Callable[[], object], *, what: str, give_up: Callable[[str], object]
) -> None:
    """Run ``work()`` for a bound Celery ``task``: retry transient errors
    with backoff (raises Celery's ``Retry``), else call ``give_up(why)``."""
    try:
        work()
    except TransientError as exc:
        retries = int(task.request.retries)
        if retries >= int(task.max_retries):
            log.error("%s: retries spent (%s); giving up", what, exc)
            GIVE_UPS.labels(_task_name(task)).inc()
            give_up(f"retries spent ({exc})")
            return
        delay = backoff_s(retries)
        log.warning("%s: %s; retry in %.1f s", what, exc, delay)
        RETRIES.labels(_task_name(task)).inc()
        raise task.retry(exc=exc, countdown=delay) from exc
    except Exception as exc:
        log.exception("%s failed", what)
        GIVE_UPS.labels(_task_name(task)).inc()
        give_up(f"failed: {exc}")


__all__ = ["MAX_RETRIES", "backoff_s", "run_with_retries"]
