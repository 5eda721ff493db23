"""Composition root of the matcher: the one place its parts are wired.

``python -m services.matcher`` calls :func:`build` once per worker process
and hands the result to ``tasks.register``.
"""

from __future__ import annotations

from dataclasses import dataclass

from facegate.adapters.redis_store import RedisStore
from services.matcher.service import MatcherService
from services.matcher.settings import MatcherSettings


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
