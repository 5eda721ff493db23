"""The lock on the command line holds no secret: ``facegate subscribe --key``
must start where no secret is set, while the commands that derive door keys
refuse clearly when ``FACEGATE_SIGNING_SECRET`` is missing (there is no
default secret any more)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from secrets_env import with_secrets

from facegate.core.errors import ConfigError
from facegate.core.signing import DoorSigner
from facegate.tools import cli_lock

pytestmark = pytest.mark.unit

PUBLIC = DoorSigner.derive("x" * 40, "front", 1).public_key.hex


def only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]) -> None:
    """The FACEGATE_* environment is exactly ``env`` and no local stack exists."""
    for name in [n for n in os.environ if n.startswith("FACEGATE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from facegate.tools.devstack import StackConfig

    real = StackConfig.default
    monkeypatch.setattr(StackConfig, "default", lambda state_dir=None: real(tmp_path / "none"))


def test_a_lock_with_its_key_needs_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only(monkeypatch, tmp_path, {"FACEGATE_REDIS_URL": "redis://127.0.0.1:21999/3"})
    listener = cli_lock.lock_listener(None, "front", [PUBLIC])
    kwargs = listener.client.get_connection_kwargs()
    assert (kwargs["port"], kwargs["db"]) == (21999, 3)
    only(monkeypatch, tmp_path, {})
    listener = cli_lock.lock_listener(None, "front", [PUBLIC])
    assert listener.client.get_connection_kwargs()["port"] == 6390  # the default


def test_deriving_a_door_key_needs_the_signing_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = with_secrets(redis_url="redis://127.0.0.1:21999/0")
    del env["FACEGATE_SIGNING_SECRET"]
    only(monkeypatch, tmp_path, env)
    with pytest.raises(ConfigError, match="FACEGATE_SIGNING_SECRET: must be set"):
        cli_lock.lock_listener(None, "front", None)  # no --key: it derives the public key
