"""What every pipeline command starts from: the environment (completed from
a local stack's settings when nothing is exported) and :class:`Context`, the
lazily built clients of one command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facegate.core.errors import ConfigError


def client_env(state_dir: Path | None = None) -> dict[str, str]:
    """The environment clients use: ``os.environ``, completed from the local
    stack's settings when the FACEGATE_* variables are not exported."""
    env = dict(os.environ)
    if "FACEGATE_REDIS_URL" in env:
        return env
    from facegate.tools.devstack import Stack, StackConfig

    stack = Stack(StackConfig.default(state_dir))
    if stack.env_file.is_file():
        return {**stack.env(), **env}
    return env


class Context:
    """Lazily built clients for one command."""

    def __init__(self, env: dict[str, str]) -> None:
        from facegate.runtime.settings import CommonSettings

        self.env = env
        self.settings = CommonSettings.from_env(env)
        self._store: Any = None
        self._objects: Any = None
        self._celery: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from facegate.adapters.redis_store import RedisStore

            self._store = RedisStore.from_url(self.settings.redis_url)
        return self._store

    @property
    def objects(self) -> Any:
        if self._objects is None:
            from facegate.adapters.objectstore import MinioObjectStore

            self._objects = MinioObjectStore(self.settings)
        return self._objects

    def admin(self) -> Any:
        from facegate.adapters.celery_app import make_celery, send_encode
        from facegate.clients.admin import Admin

        if self._celery is None:
            self._celery = make_celery(self.settings, "facegate-cli")
        celery = self._celery
        return Admin(
            self.settings, self.store, self.objects, lambda r: send_encode(celery, r),
            actor=cli_actor(),
        )

    def signer(self, door: str, version: int | None = None) -> Any:
        """The door's private key at ``version`` (default: its current one,
        read from Redis): derived from ``FACEGATE_SIGNING_SECRET``."""
        from facegate.core.signing import DoorSigner

        if version is None:
            version = self.store.door_key_version(door)
        return DoorSigner.derive(self.settings.signing_secret.get_secret_value(), door, version)

    def camera(self) -> Any:
        from facegate.clients.camera import CameraClient

        url = self.env.get("FACEGATE_INGEST_URL") or (
            f"http://{self.env.get('FACEGATE_INGEST_HOST', '127.0.0.1')}:"
            f"{self.env.get('FACEGATE_INGEST_PORT', '18700')}"
        )
        token = self.env.get("FACEGATE_CAMERA_TOKEN")
        if not token:
            raise ConfigError("FACEGATE_CAMERA_TOKEN is not set")
        return CameraClient(url, token)


def cli_actor() -> str:
    """Who the audit records of a command name: ``cli:<login name>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def context() -> Context:
    """The context of a command run from the shell."""
    return Context(client_env())


__all__ = ["Context", "cli_actor", "client_env", "context"]
