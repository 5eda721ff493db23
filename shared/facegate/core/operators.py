"""Operators of the console: roles, sessions, sign-in lock-out (pure rules).

An operator is ``admin`` (sees and changes) or ``viewer`` (sees only). A
session lives ``idle_s`` after its last request and never longer than
``absolute_s`` after sign-in. Failed sign-ins are counted per account and
per client address over ``window_s``; at ``max_failures`` (per account) or
``max_ip_failures`` (per address) further attempts are refused, even with
the right password, until the window has passed since the last failure.
The stores that keep these are :mod:`facegate.adapters.redis_operators`
(Redis) and :class:`MemoryOperators` (the fake for unit tests).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"

    @property
    def can_change(self) -> bool:
        """Whether this role may change anything (doors, people, thresholds)."""
        return self is Role.ADMIN


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role
    password_hash: str
    created: float


@dataclass(frozen=True)
class Session:
    """A signed-in operator; ``csrf`` is the token every form must carry."""

    operator: str
    role: Role
    csrf: str
    created: float
    last_seen: float

    def expired(self, now: float, *, idle_s: float, absolute_s: float) -> bool:
        return now - self.last_seen > idle_s or now - self.created > absolute_s


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    max_ip_failures: int = 20
    window_s: float = 900.0

    def locked(self, account_failures: int, ip_failures: int) -> bool:
        return account_failures >= self.max_failures or ip_failures >= self.max_ip_failures


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


__all__ = ["LockoutPolicy", "Operator", "Role", "Session", "csrf_matches"]
