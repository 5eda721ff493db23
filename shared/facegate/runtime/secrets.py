"""What a secret must be: placeholder detection, the production rules,
masking for display, and :class:`SecretRule`, the field metadata that marks
a setting as a secret (see :mod:`facegate.runtime.settings`).

There is no default secret anywhere: a secret setting without a value is a
configuration error in every environment. The local stack
(:mod:`facegate.tools.devstack`) generates random ones per stack; tests give
their own. ``FACEGATE_ENV=production`` adds: at least
:data:`MIN_SECRET_LENGTH` characters, nothing that looks like a placeholder,
and no value shared by two secrets (:func:`reused_secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "change_me",
        "changethis",
        "secret",
        "password",
        "minioadmin",
        "admin",
        "test",
        "token",
        "xxx",
        "todo",
        "default",
    }
)
MIN_SECRET_LENGTH = 32
"""Shortest secret production accepts (``openssl rand -hex 32`` gives 64)."""


@dataclass(frozen=True)
class SecretRule:
    """Field metadata of a secret: what production demands of it."""

    min_length: int = MIN_SECRET_LENGTH


def placeholder_reason(value: str, *, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """Why ``value`` is unfit as a production secret, or ``None`` when it is fine."""
    low = value.strip().lower()
    if low in PLACEHOLDERS:
        return "is a placeholder"
    if "not-for-production" in low or "example" in low:
        return "is a documentation or development value"
    if "change" in low and "me" in low:
        return "looks like a placeholder"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters"
    if len(set(value)) < 8:
        return "has fewer than 8 distinct characters"
    return None


def reused_secrets(values: Mapping[str, str]) -> list[tuple[str, str]]:
    """Pairs of names (``values``: name -> secret) that share one value;
    each pair listed once, in the order of ``values``."""
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if not value:
            continue
        first = seen.setdefault(value, name)
        if first != name:
            pairs.append((first, name))
    return pairs


def mask(secret: str) -> str:
    """``****`` plus the length: enough to tell two secrets apart, nothing more."""
    return f"**** ({len(secret)} chars)" if secret else "(empty)"


__all__ = [
    "MIN_SECRET_LENGTH",
    "PLACEHOLDERS",
    "SecretRule",
    "mask",
    "placeholder_reason",
    "reused_secrets",
]
