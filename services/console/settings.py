"""The console's settings (``FACEGATE_CONSOLE_*``; see :mod:`facegate.runtime.settings`)."""

from __future__ import annotations

from pydantic import Field

from facegate.runtime.settings import CommonSettings, Endpoint


class ConsoleSettings(CommonSettings):
    """The operators' web console."""

    console_host: str = "127.0.0.1"
    console_port: int = Field(18710, ge=1, le=65535)
    console_secure_cookies: bool = Field(
        False,
        description="mark the session cookie Secure (set it when the console is served "
        "behind TLS; on in production)",
    )
    console_session_idle_s: int = Field(
        1800, ge=30, le=86400, description="a session ends after this long without a request"
    )
    console_session_max_s: int = Field(
        12 * 3600, ge=60, le=7 * 86400, description="a session ends this long after sign-in"
    )
    console_lockout_failures: int = Field(
        5, ge=1, le=100, description="failed sign-ins that lock an account"
    )
    console_lockout_ip_failures: int = Field(
        20, ge=1, le=10000, description="failed sign-ins that lock a client address"
    )
    console_lockout_s: int = Field(
        900, ge=1, le=86400, description="how long a lock-out lasts after the last failure"
    )
    console_max_photo_bytes: int = Field(
        8 * 2**20, ge=1024, le=64 * 2**20, description="the largest enrolment photo accepted"
    )
    console_max_photos: int = Field(10, ge=1, le=50, description="photos per enrolment")
    console_s3_endpoint: Endpoint | None = Field(
        None,
        description="host:port browsers reach the object store at, for the short-lived "
        "presigned snapshot URLs (default: FACEGATE_S3_ENDPOINT)",
    )
    console_presign_s: int = Field(
        60, ge=5, le=3600, description="life of a snapshot's presigned GET URL"
    )
    console_enrol_timeout_s: float = Field(
        120.0, ge=1.0, le=600.0, description="how long an enrolment waits for the encoder"
    )

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies when asked for, and always in production."""
        return self.console_secure_cookies or self.production

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: every photo at its largest, and the form."""
        return self.console_max_photo_bytes * self.console_max_photos + 64 * 1024


__all__ = ["ConsoleSettings"]
