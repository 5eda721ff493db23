"""What a secret must be: the development defaults, placeholder detection,
masking for display, and :class:`SecretRule`, the field metadata that marks
a setting as a secret (see :mod:`facegate.runtime.settings`)."""

from __future__ import annotations

from dataclasses import dataclass

DEV_S3_ACCESS_KEY = "facegate-dev-access"
DEV_S3_SECRET_KEY = "facegate-dev-secret-not-for-production"
DEV_SIGNING_SECRET = "facegate-dev-signing-secret-not-for-production"
DEV_WEBHOOK_TOKEN = "facegate-dev-webhook-token-not-for-production"
DEV_CAMERA_TOKEN = "facegate-dev-camera-token-not-for-production"
DEV_DEFAULTS = frozenset(
    {DEV_S3_ACCESS_KEY, DEV_S3_SECRET_KEY, DEV_SIGNING_SECRET, DEV_WEBHOOK_TOKEN, DEV_CAMERA_TOKEN}
)

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
MIN_SECRET_LENGTH = 16

@dataclass(frozen=True)
class SecretRule:
    """Field metadata of a secret: what production demands of it."""

    dev_default: str
    min_length: int = MIN_SECRET_LENGTH


def placeholder_reason(value: str, *, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    """Why ``value`` is unfit as a production secret, or ``None`` when it is fine."""
    low = value.strip().lower()
    if low in PLACEHOLDERS:
        return "is a placeholder"
    if value in DEV_DEFAULTS or "not-for-production" in low:
        return "is a development default"
    if "change" in low and "me" in low:
        return "looks like a placeholder"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters"
    if min_length >= MIN_SECRET_LENGTH and len(set(value)) < 4:
        return "has fewer than 4 distinct characters"
    return None


def mask(secret: str) -> str:
    """``****`` plus the length: enough to tell two secrets apart, nothing more."""
    return f"**** ({len(secret)} chars)" if secret else "(empty)"


__all__ = [
    "DEV_DEFAULTS",
    "MIN_SECRET_LENGTH",
    "PLACEHOLDERS",
    "SecretRule",
    "mask",
    "placeholder_reason",
]
