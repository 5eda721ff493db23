"""Composition root of the matcher: the one place its parts are wired.

``python -m services.matcher`` calls :func:`build` once per worker process
and hands the result to ``tasks.register``.
"""

from __future__ import annotations

from dataclasses import dataclass

from facegate.adapters.redis_store import RedisStore
from services.matcher.approaches import Sweeper
from services.matcher.service import MatcherService
from services.matcher.settings import MatcherSettings


@dataclass
class MatcherApp:
    settings: MatcherSettings
    store: RedisStore
    service: MatcherService
    sweeper: Sweeper

    def close(self) -> None:
        self.sweeper.stop()
        self.store.close()


def build(settings: MatcherSettings) -> MatcherApp:
    """Wire Redis, the service and its approach sweeper (nothing connects
    until first used; the sweeper starts when the worker is ready)."""
    store = RedisStore.from_url(settings.redis_url, stream_maxlen=settings.stream_maxlen)
    service = MatcherService(settings, store)
    return MatcherApp(settings, store, service, Sweeper(service.close_due))
