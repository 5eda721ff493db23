"""Explicit secrets for tests that build settings from a mapping.

The code has no default secret (``facegate.runtime.secrets``): a test that
reads settings must say which secrets it runs with. These values are public
(they are in this file), distinct and long enough for production's rules,
so a test can flip ``FACEGATE_ENV=production`` without tripping them.
"""

from __future__ import annotations

from collections.abc import Mapping

TEST_SECRETS: dict[str, str] = {
    "FACEGATE_S3_ACCESS_KEY": "tests-s3-access-7Hq2Lm9Xv4Rb8Nc1Kd5W",
    "FACEGATE_S3_SECRET_KEY": "tests-s3-secret-Zp3Tw8Yq6Ue1Io4Pa7Sd",
    "FACEGATE_SIGNING_SECRET": "tests-signing-Gf2Hj5Kl8Mn1Bv4Cx7Zq0",
    "FACEGATE_WEBHOOK_TOKEN": "tests-webhook-Rt6Yu9Io2Pa5Sd8Fg1Hj4",
    "FACEGATE_CAMERA_TOKEN": "tests-camera-Qw3Er6Ty9Ui2Op5As8Df1G",
}


def with_secrets(environ: Mapping[str, str] | None = None, **variables: str) -> dict[str, str]:
    """``TEST_SECRETS`` plus ``environ`` plus ``FACEGATE_<NAME>=value`` keyword
    variables (later ones win)."""
    out = dict(TEST_SECRETS)
    out.update(environ or {})
    out.update({f"FACEGATE_{k.upper()}": v for k, v in variables.items()})
    return out
