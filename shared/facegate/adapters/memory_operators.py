"""An in-memory :class:`~facegate.adapters.redis_operators.RedisOperators`
(the same methods and expiry rules) for unit tests of the console's sign-in."""

from __future__ import annotations

import time
from collections.abc import Callable

from facegate.core import keys
from facegate.core.errors import BadMessageError
from facegate.core.operators import Operator, Role, Session


class MemoryOperators:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._operators: dict[str, Operator] = {}
        self._sessions: dict[str, tuple[Session, float]] = {}
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}

    def add_operator(self, name: str, role: Role, password_hash: str, *, replace: bool) -> bool:
        keys.check_operator(name)
        if name in self._operators and not replace:
            return False
        self._operators[name] = Operator(name, role, password_hash, self.clock())
        return True

    def get_operator(self, name: str) -> Operator | None:
        try:
            keys.check_operator(name)
        except BadMessageError:
            return None
        return self._operators.get(name)

    def list_operators(self) -> list[str]:
        return sorted(self._operators)

    def create_session(self, digest: str, session: Session, ttl_s: float) -> None:
        self._sessions[digest] = (session, self.clock() + ttl_s)

    def get_session(self, digest: str) -> Session | None:
        found = self._sessions.get(digest)
        if found is None or found[1] <= self.clock():
            self._sessions.pop(digest, None)
            return None
        return found[0]

    def touch_session(self, digest: str, now: float, ttl_s: float) -> None:
        found = self._sessions.get(digest)
        if found is not None:
            s = found[0]
            self._sessions[digest] = (
                Session(s.operator, s.role, s.csrf, s.created, now),
                self.clock() + ttl_s,
            )

    def delete_session(self, digest: str) -> None:
        self._sessions.pop(digest, None)

    def add_failure(self, scope: str, who: str, window_s: float) -> int:
        count = self.failures(scope, who) + 1
        self._failures[(scope, who)] = (count, self.clock() + window_s)
        return count

    def failures(self, scope: str, who: str) -> int:
        found = self._failures.get((scope, who))
        if found is None or found[1] <= self.clock():
            return 0
        return found[0]

    def clear_failures(self, scope: str, who: str) -> None:
        self._failures.pop((scope, who), None)


__all__ = ["MemoryOperators"]
