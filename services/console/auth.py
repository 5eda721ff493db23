"""Sign-in, sessions, roles and CSRF for the console (no HTTP here).

:class:`Auth` is what the routes call: :meth:`Auth.sign_in` checks the
lock-out first (a locked account or address is refused even with the right
password), then the argon2 hash (an unknown name is checked against a dummy
hash, so the answer takes as long as for a known one); on success it makes a
session whose cookie is returned once and stored only as its SHA-256.
:meth:`Auth.session` answers the session of a cookie, ``None`` when it is
unknown or expired (idle or absolute), and slides its idle expiry.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from facegate.adapters.redis_operators import check_password, new_token, token_digest
from facegate.core.operators import LockoutPolicy, Operator, Role, Session, csrf_matches


@functools.cache
def _dummy_hash() -> str:
    """Checked for unknown names, so they cost the same time as known ones."""
    from facegate.adapters.redis_operators import hash_password

    return hash_password(secrets.token_urlsafe(16))


class OperatorStore(Protocol):
    def get_operator(self, name: str) -> Operator | None: ...

    def create_session(self, digest: str, session: Session, ttl_s: float) -> None: ...

    def get_session(self, digest: str) -> Session | None: ...

    def touch_session(self, digest: str, now: float, ttl_s: float) -> None: ...

    def delete_session(self, digest: str) -> None: ...

    def add_failure(self, scope: str, who: str, window_s: float) -> int: ...

    def failures(self, scope: str, who: str) -> int: ...

    def clear_failures(self, scope: str, who: str) -> None: ...


class Refusal(StrEnum):
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"


class SignInRefusedError(Exception):
    def __init__(self, why: Refusal) -> None:
        super().__init__(why.value)
        self.why = why


class ForbiddenError(Exception):
    """The operator's role may not do this (HTTP 403)."""


class CsrfRefusedError(Exception):
    """The form's CSRF token is missing or wrong (HTTP 403)."""


class Auth:
    def __init__(
        self,
        store: OperatorStore,
        *,
        lockout: LockoutPolicy,
        idle_s: float,
        absolute_s: float,
        clock: Callable[[], float] = time.time,
        check: Callable[[str, str], bool] = check_password,
    ) -> None:
        self.store = store
        self.lockout = lockout
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock
        self.check = check

    def locked(self, name: str, ip: str) -> bool:
        return self.lockout.locked(
            self.store.failures("account", name.lower()), self.store.failures("ip", ip)
        )

    def sign_in(self, name: str, password: str, ip: str) -> tuple[str, Session]:
        """``(cookie value, session)``; :class:`SignInRefusedError` otherwise."""
        if self.locked(name, ip):
            raise SignInRefusedError(Refusal.LOCKED)
        operator = self.store.get_operator(name)
        ok = self.check(operator.password_hash if operator else _dummy_hash(), password)
        if operator is None or not ok:
            window = self.lockout.window_s
            self.store.add_failure("account", name.lower(), window)
            self.store.add_failure("ip", ip, window)
            raise SignInRefusedError(Refusal.BAD_CREDENTIALS)
        self.store.clear_failures("account", name.lower())
        now = self.clock()
        token, digest = new_token()
        session = Session(operator.name, operator.role, secrets.token_urlsafe(32), now, now)
        self.store.create_session(digest, session, self.idle_s)
        return token, session

    def session(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        digest = token_digest(token)
        found = self.store.get_session(digest)
        if found is None:
            return None
        now = self.clock()
        if found.expired(now, idle_s=self.idle_s, absolute_s=self.absolute_s):
            self.store.delete_session(digest)
            return None
        # the account may have been removed or demoted since sign-in
        operator = self.store.get_operator(found.operator)
        if operator is None or operator.role is not found.role:
            self.store.delete_session(digest)
            return None
        self.store.touch_session(digest, now, self.idle_s)
        return Session(found.operator, found.role, found.csrf, found.created, now)

    def sign_out(self, token: str | None) -> None:
        if token and len(token) <= 200:
            self.store.delete_session(token_digest(token))

    @staticmethod
    def require_admin(session: Session) -> None:
        if not session.role.can_change:
            raise ForbiddenError(f"{session.operator} is a viewer: only an admin may change this")

    @staticmethod
    def require_csrf(session: Session, given: str | None) -> None:
        if not csrf_matches(session.csrf, given):
            raise CsrfRefusedError("the form's security token is missing or wrong: reload the page")


__all__ = [
    "Auth",
    "CsrfRefusedError",
    "ForbiddenError",
    "OperatorStore",
    "Refusal",
    "Role",
    "SignInRefusedError",
]
