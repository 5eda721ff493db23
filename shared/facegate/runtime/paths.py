"""Where facegate keeps what it builds or downloads once per user."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from facegate.runtime.settings import OptionalPath, Settings


class CacheSettings(Settings):
    """The cache root, read by the engine (converted model) and the tools
    (sample photos)."""

    cache_dir: OptionalPath = Field(
        None,
        description="root of the caches (default $XDG_CACHE_HOME/facegate or ~/.cache/facegate)",
    )


def cache_root() -> Path:
    """The user cache directory of facegate (``FACEGATE_CACHE_DIR`` overrides)."""
    configured = CacheSettings.from_env().cache_dir
    if configured is not None:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facegate"


__all__ = ["CacheSettings", "cache_root"]
