"""Composition root of ingest: the one place its parts are wired.

``python -m services.ingest`` calls :func:`build` once and serves the
result over HTTP (``http.py``), with the reconciler (``reconciler.py``) on a
thread beside it; the use cases are in ``service.py``.
"""

from __future__ import annotations

from facegate.adapters.celery_app import make_celery, send_encode, send_match
from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from services.ingest.service import EnqueueUnavailableError, IngestApp, UnauthorizedError
from services.ingest.settings import IngestSettings


def build(settings: IngestSettings) -> IngestApp:
    """Wire the object store, the Redis store and the Celery senders."""
    celery = make_celery(settings, "facegate-ingest")
    celery.conf.update(
        broker_connection_timeout=3.0,
        broker_connection_max_retries=1,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return IngestApp(
        settings,
        MinioObjectStore(settings),
        RedisStore.from_url(settings.redis_url),
        lambda request: send_encode(celery, request),
        lambda request: send_match(celery, request),
        resources=[celery],
    )


__all__ = ["EnqueueUnavailableError", "IngestApp", "UnauthorizedError", "build"]
