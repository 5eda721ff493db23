"""The running pipeline's clients (imported by conftest and the tests)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from facegate.adapters.objectstore import MinioObjectStore
from facegate.adapters.redis_store import RedisStore
from facegate.clients.admin import Admin
from facegate.clients.camera import CameraClient
from facegate.runtime.settings import CommonSettings
from facegate.tools.devstack import Stack


@dataclass
class Site:
    """Clients of the running pipeline, as a building's systems see it."""

    stack: Stack
    env: dict[str, str]
    settings: CommonSettings
    store: RedisStore
    redis: redis.Redis
    objects: MinioObjectStore
    camera: CameraClient
    admin: Admin
    celery: object

    def log(self, name: str) -> str:
        return self.stack.tail(name, 40)
