"""Composition root of the encoder: the one place its parts are wired.

``build(settings)`` loads the face engine (converting and caching the dlib
model on first use), connects the object store and Redis, and starts the
batcher thread and the pipeline's stage threads (prepare, engine, answer:
see :mod:`services.encoder.pipeline`). ``python -m services.encoder`` calls it once per worker
process, after the process has started (never at import), before the worker
consumes its first task, and hands the result to ``tasks.register``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery

from facegate.adapters import metrics
from facegate.adapters.celery_app import make_celery, send_match
from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.core.messages import EncodeRequest, MatchRequest
from facegate.engine.types import FaceEncoder
from services.encoder.batcher import Batcher
from services.encoder.pipeline import Pipeline
from services.encoder.service import Encoded, EncoderService
from services.encoder.settings import EncoderSettings


@dataclass
class EncoderApp:
    settings: EncoderSettings
    store: RedisStore
    service: EncoderService
    batcher: Batcher[EncodeRequest, Encoded]
    pipeline: Pipeline[EncodeRequest]
    send_match: Callable[[MatchRequest], object]
    sender: Celery

    def close(self) -> None:
        """Stop taking uploads, finish every batch already taken, then let go."""
        self.batcher.close()
        self.pipeline.close()
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

        began = time.perf_counter()
        engine = build_face_encoder(settings.model_cache, detector=settings.detector_config())
        metrics.observe_model_build(time.perf_counter() - began)
    celery = sender if sender is not None else make_celery(settings, "facegate-encoder-sender")
    store = RedisStore.from_url(settings.redis_url)
    objects = MinioObjectStore(settings)

    def _send(request: MatchRequest) -> object:
        return send_match(celery, request)

    service = EncoderService(settings, objects, store, engine, _send)
    pipeline: Pipeline[EncodeRequest] = Pipeline(
        [("prepare", service.prepare), ("engine", service.engine_stage)],
        service.answer_job,
        depth=settings.pipeline_depth,
        gather={"engine"},
        name="encode",
    )
    batcher: Batcher[EncodeRequest, Encoded] = Batcher(
        handoff=pipeline.put,
        max_size=settings.batch_size,
        max_wait_s=settings.batch_wait_ms / 1000.0,
        name="encode-batcher",
        on_batch=metrics.observe_batch,
    )
    return EncoderApp(settings, store, service, batcher, pipeline, _send, celery)
