"""Composition root of the encoder: the one place its parts are wired.

``build(settings)`` loads the face engine (converting and caching the dlib
model on first use), connects the object store and Redis, and starts the
batcher thread. It is called once per worker process, after the process has
started (never at import), by ``python -m services.encoder`` before the
worker consumes its first task.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from facegate.adapters.celery_app import make_celery, send_match
from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core.messages import EncodeRequest, MatchRequest
from facegate.engine.types import FaceEncoder
from facegate.runtime.settings import EncoderSettings
from services.encoder.batcher import Batcher
from services.encoder.service import Encoded, EncoderService


@dataclass
class EncoderApp:
    settings: EncoderSettings
    store: RedisStore
    service: EncoderService
    batcher: Batcher[EncodeRequest, Encoded]

    def close(self) -> None:
        self.batcher.close()
        self.service.close()
        self.store.close()


def build(
    settings: EncoderSettings,
    *,
    engine: FaceEncoder | None = None,
    sender: Celery | None = None,
) -> EncoderApp:
    """Wire the encoder. ``engine``/``sender`` replace the real ones (tests)."""
    if engine is None:
        from facegate.engine.factory import build_face_encoder

        engine = build_face_encoder(settings.model_cache)
    celery = sender if sender is not None else make_celery(settings, "facegate-encoder")
    store = RedisStore.from_url(settings.redis_url)
    objects = MinioObjectStore(settings)

    def _send(request: MatchRequest) -> object:
        return send_match(celery, request)

    service = EncoderService(settings, objects, store, engine, _send)
    batcher: Batcher[EncodeRequest, Encoded] = Batcher(
        service.process_batch,
        max_size=settings.batch_size,
        max_wait_s=settings.batch_wait_ms / 1000.0,
        name="encode-batcher",
    )
    return EncoderApp(settings=settings, store=store, service=service, batcher=batcher)


def build_celery(settings: EncoderSettings) -> Celery:
    """The encoder's Celery app with ``facegate.encode`` registered."""
    from services.encoder.tasks import register

    celery = make_celery(settings, "facegate-encoder")
    register(celery, settings)
    return celery
