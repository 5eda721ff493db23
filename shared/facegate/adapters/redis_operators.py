"""Operator accounts, console sessions and failed sign-ins in Redis.

Keys (:mod:`facegate.core.keys`): ``facegate:operators`` (set of names),
``facegate:operator:<name>`` (hash: ``role``, ``hash`` argon2id, ``created``),
``facegate:console:session:<sha256 of the cookie>`` (hash with a TTL: the
cookie itself is never stored), ``facegate:console:failures:<scope>:<hash>``
(a counter whose TTL restarts at each failure). Passwords are hashed with
argon2id (:func:`hash_password`); the clear password never reaches Redis.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis

from facegate.adapters.redis_codec import text, translated
from facegate.core import keys
from facegate.core.errors import BadMessageError, ConfigError
from facegate.core.operators import Operator, Role, Session

MIN_PASSWORD_CHARS = 10


def hash_password(password: str) -> str:
    """An argon2id hash (argon2-cffi's defaults: 64 MiB, 3 passes)."""
    from argon2 import PasswordHasher

    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return PasswordHasher().hash(password)


def check_password(password_hash: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(PasswordHasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str]:
    """A fresh session cookie value and the digest it is stored under."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class RedisOperators:
    """Operators, sessions and failure counters on one Redis client."""

    def __init__(self, client: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock

    # --- accounts -------------------------------------------------------------------

    def add_operator(self, name: str, role: Role, password_hash: str, *, replace: bool) -> bool:
        """Create (or with ``replace``, overwrite) an account; ``False`` when
        it exists and ``replace`` is off."""
        key = keys.operator_key(name)
        fields = {"role": role.value, "hash": password_hash, "created": repr(self.clock())}
        with translated("add_operator"):
            if not replace and self.client.exists(key):
                return False
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.sadd(keys.OPERATORS, name)
            pipe.execute()
        return True

    def get_operator(self, name: str) -> Operator | None:
        try:
            key = keys.operator_key(name)
        except BadMessageError:
            return None
        with translated("get_operator"):
            raw: Any = self.client.hgetall(key)
        if not raw:
            return None
        fields = {str(text(k)): str(text(v)) for k, v in raw.items()}
        try:
            return Operator(name, Role(fields["role"]), fields["hash"], float(fields["created"]))
        except (KeyError, ValueError) as exc:
            raise BadMessageError(f"operator {name}: malformed account ({exc})") from exc

    def list_operators(self) -> list[str]:
        with translated("list_operators"):
            names: Any = self.client.smembers(keys.OPERATORS)
        return sorted(str(text(n)) for n in names)

    # --- sessions ------------------------------------------------------------------------

    def create_session(self, digest: str, session: Session, ttl_s: float) -> None:
        key = keys.session_key(digest)
        fields = {
            "operator": session.operator,
            "role": session.role.value,
            "csrf": session.csrf,
            "created": repr(session.created),
            "last_seen": repr(session.last_seen),
        }
        with translated("create_session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, max(1, int(ttl_s)))
            pipe.execute()

    def get_session(self, digest: str) -> Session | None:
        with translated("get_session"):
            raw: Any = self.client.hgetall(keys.session_key(digest))
        if not raw:
            return None
        fields = {str(text(k)): str(text(v)) for k, v in raw.items()}
        try:
            return Session(
                fields["operator"],
                Role(fields["role"]),
                fields["csrf"],
                float(fields["created"]),
                float(fields["last_seen"]),
            )
        except (KeyError, ValueError):
            return None

    def touch_session(self, digest: str, now: float, ttl_s: float) -> None:
        key = keys.session_key(digest)
        with translated("touch_session"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, "last_seen", repr(now))
            pipe.expire(key, max(1, int(ttl_s)))
            pipe.execute()

    def delete_session(self, digest: str) -> None:
        with translated("delete_session"):
            self.client.delete(keys.session_key(digest))

    # --- failed sign-ins -------------------------------------------------------------

    def add_failure(self, scope: str, who: str, window_s: float) -> int:
        """Count one failure; the window restarts. The count after it."""
        key = keys.failures_key(scope, who)
        with translated("add_failure"):
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, max(1, int(window_s)))
            count, _ = pipe.execute()
        return int(count)

    def failures(self, scope: str, who: str) -> int:
        with translated("failures"):
            raw: Any = self.client.get(keys.failures_key(scope, who))
        return int(raw) if raw is not None else 0

    def clear_failures(self, scope: str, who: str) -> None:
        with translated("clear_failures"):
            self.client.delete(keys.failures_key(scope, who))


__all__ = [
    "MIN_PASSWORD_CHARS",
    "RedisOperators",
    "check_password",
    "hash_password",
    "new_token",
    "token_digest",
]
