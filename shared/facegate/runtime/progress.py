"""A progress bar for long runs on a terminal (silent when not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on a terminal, silence otherwise."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="img", disable=None, file=sys.stderr) as bar:
        yield bar.update


__all__ = ["progress_bar"]
