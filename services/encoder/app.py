"""Composition root of the encoder: the one place its parts are wired.

``build(settings)`` loads the face engine (converting and caching the dlib
model on first use), connects the object store and Redis, and starts the
batcher thread. ``python -m services.encoder`` calls it once per worker
process, after the process has started (never at import), before the worker
consumes its first task, and hands the result to ``tasks.register``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery

from facegate.adapters.celery_app import make_celery, send_match
from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core.messages import EncodeRequest, MatchRequest
from facegate.engine.types import FaceEncoder
from services.encoder.batcher import Batcher
from services.encoder.service import Encoded, EncoderService
from services.encoder.settings import EncoderSettings


@dataclass
class EncoderApp:
    settings: EncoderSettings
    store: RedisStore
    service: EncoderService
    batcher: Batcher[EncodeRequest, Encoded]
    send_match: Callable[[MatchRequest], object]
    sender: Celery

    def close(self) -> None:
        self.batcher.close()
        self.service.close()
        self.store.close()
        self.sender.close()


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
    celery = sender if sender is not None else make_celery(settings, "facegate-encoder-sender")
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
    return EncoderApp(settings, store, service, batcher, _send, celery)
