"""Composition root of the matcher: the one place its parts are wired."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from facegate.adapters.celery_app import make_celery
from facegate.adapters.redis_store import RedisStore
from facegate.runtime.settings import MatcherSettings
from services.matcher.service import MatcherService


@dataclass
class MatcherApp:
    settings: MatcherSettings
    store: RedisStore
    service: MatcherService

    def close(self) -> None:
        self.store.close()


def build(settings: MatcherSettings) -> MatcherApp:
    """Wire Redis and the service (nothing connects until first used)."""
    store = RedisStore.from_url(settings.redis_url, stream_maxlen=settings.stream_maxlen)
    return MatcherApp(settings=settings, store=store, service=MatcherService(settings, store))


def build_celery(settings: MatcherSettings) -> Celery:
    """The matcher's Celery app with the ``facegate.match`` task registered."""
    from services.matcher.tasks import register

    celery = make_celery(settings, "facegate-matcher")
    register(celery, settings)
    return celery
