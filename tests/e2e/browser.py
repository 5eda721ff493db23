"""Debian's Chromium for Playwright: installed with apt-get when missing
(never Playwright's own browser download), launched by its path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(message: str) -> None:
    if _in_ci():
        pytest.fail(message + " (CI=true)")
    pytest.skip(message)


def chromium_path() -> str:
    """The Chromium binary, installed from Debian's packages when missing."""
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        _unavailable("browser tests need Debian's chromium (apt-get install chromium, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                              timeout=900)
        if proc.returncode != 0 and argv[1] == "install":
            _unavailable(f"apt-get install chromium failed: {proc.stderr.strip()[-400:]}")
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    _unavailable("chromium was installed but no binary was found")
    raise AssertionError("unreachable")
