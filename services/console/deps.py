"""What the console's routes are given: :class:`Console`, built once by
:func:`services.console.app.build` (the composition root)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facegate.adapters.objectstore import ObjectStore
from facegate.adapters.redis_operators import RedisOperators
from facegate.adapters.redis_store import RedisStore
from facegate.clients.admin import Admin
from facegate.core.messages import EncodeRequest
from facegate.core.operators import Session
from services.console.auth import Auth
from services.console.settings import ConsoleSettings


@dataclass
class Console:
    settings: ConsoleSettings
    store: RedisStore
    operators: RedisOperators
    objects: ObjectStore
    auth: Auth
    send: Callable[[EncodeRequest], object]
    resources: list[Any] = field(default_factory=list)

    def admin(self, session: Session) -> Admin:
        """The admin library acting for ``session``'s operator (audited as such)."""
        return Admin(
            self.settings, self.store, self.objects, self.send,
            actor=f"console:{session.operator}",
        )

    def close(self) -> None:
        for resource in self.resources:
            close = getattr(resource, "close", None)
            if close is not None:
                close()
        self.store.close()


__all__ = ["Console"]
