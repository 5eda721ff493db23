"""The console's sign-in rules: sessions, expiry, lock-out, roles, CSRF (fakes only)."""

from __future__ import annotations

import pytest

from facegate.adapters.memory_operators import MemoryOperators
from facegate.core.operators import LockoutPolicy, Role, csrf_matches
from services.console.auth import (
    Auth,
    CsrfRefusedError,
    ForbiddenError,
    Refusal,
    SignInRefusedError,
)

pytestmark = pytest.mark.unit

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def plain_check(stored: str, given: str) -> bool:
    """Stands in for argon2 (tested on its own below): the 'hash' is the password."""
    return stored == f"hash:{given}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> Auth:
    store = MemoryOperators(clock)
    store.add_operator("ann", Role.ADMIN, f"hash:{PASSWORD}", replace=False)
    store.add_operator("vic", Role.VIEWER, f"hash:{PASSWORD}", replace=False)
    return Auth(
        store, lockout=LockoutPolicy(3, 5, 600.0), idle_s=300.0, absolute_s=3600.0,
        clock=clock, check=plain_check,
    )


def test_sign_in_gives_a_session_with_its_role_and_csrf(auth: Auth) -> None:
    token, session = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    assert session.role is Role.ADMIN and len(session.csrf) >= 32
    found = auth.session(token)
    assert found is not None and found.operator == "ann" and found.csrf == session.csrf
    assert auth.session(token + "x") is None
    assert auth.session(None) is None


def test_wrong_password_and_unknown_name_answer_the_same(auth: Auth) -> None:
    for name, password in (("ann", "wrong password!"), ("nobody", PASSWORD)):
        with pytest.raises(SignInRefusedError) as info:
            auth.sign_in(name, password, "10.0.0.1")
        assert info.value.why is Refusal.BAD_CREDENTIALS


def test_account_locks_after_failures_even_for_the_right_password(
    auth: Auth, clock: Clock
) -> None:
    for _ in range(3):
        with pytest.raises(SignInRefusedError):
            auth.sign_in("ann", "guess guess guess", f"10.0.0.{_}")
    with pytest.raises(SignInRefusedError) as info:
        auth.sign_in("ann", PASSWORD, "10.9.9.9")
    assert info.value.why is Refusal.LOCKED
    # another account from another address is not affected
    auth.sign_in("vic", PASSWORD, "10.9.9.9")
    clock.now += 601.0
    auth.sign_in("ann", PASSWORD, "10.9.9.9")


def test_an_address_locks_after_failures_on_many_accounts(auth: Auth) -> None:
    for i in range(5):
        with pytest.raises(SignInRefusedError):
            auth.sign_in(f"user{i}", "guess guess guess", "10.6.6.6")
    with pytest.raises(SignInRefusedError) as info:
        auth.sign_in("vic", PASSWORD, "10.6.6.6")
    assert info.value.why is Refusal.LOCKED
    auth.sign_in("vic", PASSWORD, "10.7.7.7")


def test_success_clears_the_account_count(auth: Auth) -> None:
    for _ in range(2):
        with pytest.raises(SignInRefusedError):
            auth.sign_in("ann", "guess guess guess", "10.0.0.1")
    auth.sign_in("ann", PASSWORD, "10.0.0.1")
    for _ in range(2):
        with pytest.raises(SignInRefusedError):
            auth.sign_in("ann", "guess guess guess", "10.0.0.2")
    auth.sign_in("ann", PASSWORD, "10.0.0.3")  # 2 new failures: not locked


def test_session_expires_when_idle_and_absolutely(auth: Auth, clock: Clock) -> None:
    token, _ = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    clock.now += 299.0
    assert auth.session(token) is not None  # slides the idle expiry
    clock.now += 299.0
    assert auth.session(token) is not None
    clock.now += 301.0
    assert auth.session(token) is None
    token, _ = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    for _ in range(13):
        clock.now += 290.0
        auth.session(token)
    assert clock.now - 1_000_000.0 > 3600.0
    assert auth.session(token) is None


def test_sign_out_ends_the_session(auth: Auth) -> None:
    token, _ = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    auth.sign_out(token)
    assert auth.session(token) is None


def test_a_demoted_or_removed_operator_loses_the_session(auth: Auth) -> None:
    token, _ = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    auth.store.add_operator("ann", Role.VIEWER, f"hash:{PASSWORD}", replace=True)  # type: ignore[attr-defined]
    assert auth.session(token) is None


def test_viewers_see_admins_change(auth: Auth) -> None:
    _, viewer = auth.sign_in("vic", PASSWORD, "10.0.0.1")
    _, admin = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    with pytest.raises(ForbiddenError):
        Auth.require_admin(viewer)
    Auth.require_admin(admin)
    assert not Role.VIEWER.can_change and Role.ADMIN.can_change


def test_csrf_tokens_must_match_exactly(auth: Auth) -> None:
    _, session = auth.sign_in("ann", PASSWORD, "10.0.0.1")
    Auth.require_csrf(session, session.csrf)
    for forged in (None, "", session.csrf[:-1], session.csrf + "a", "x" * len(session.csrf)):
        with pytest.raises(CsrfRefusedError):
            Auth.require_csrf(session, forged)
    assert not csrf_matches("", "")


def test_argon2_hashes_verify_only_their_password() -> None:
    from facegate.adapters.redis_operators import check_password, hash_password
    from facegate.core.errors import ConfigError

    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert check_password(stored, PASSWORD)
    assert not check_password(stored, PASSWORD + " ")
    assert not check_password("not a hash", PASSWORD)
    with pytest.raises(ConfigError):
        hash_password("short")
