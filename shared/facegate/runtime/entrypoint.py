"""Starting a facegate service process: what every entry point shares.

:func:`start` parses ``--check-config`` (print the validated settings,
secrets masked, exit 0; or the error, exit 1), reads the service's settings
once and configures logging. The Celery services go on with
:func:`facegate.adapters.celery_worker.run_worker`; ingest serves HTTP.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from facegate.core.errors import ConfigError
from facegate.runtime.settings import CommonSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=CommonSettings)
A = TypeVar("A", bound="Closable")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class Started(Generic[S]):
    """What :func:`start` read: the settings and the arguments it did not own."""

    settings: S
    args: argparse.Namespace
    extra: list[str]


def start(
    name: str,
    settings_cls: type[S],
    argv: Sequence[str] | None,
    *,
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    pass_through: bool = False,
) -> Started[S] | int:
    """Parse the common switches and read the settings; an ``int`` is the
    exit code when the process should stop here (``--check-config`` or a
    configuration error). With ``pass_through`` unknown arguments are kept
    (for ``celery worker``) instead of refused."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=description)
    parser.add_argument("--check-config", action="store_true", help="validate settings and exit")
    if add_arguments is not None:
        add_arguments(parser)
    if pass_through:
        args, extra = parser.parse_known_args(argv)
    else:
        args, extra = parser.parse_args(argv), []
    try:
        settings = settings_cls.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"facegate {name}: configuration error: {exc}\n")
        return 1
    if args.check_config:
        sys.stdout.write(settings.describe_text() + "\n")
        return 0
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    return Started(settings, args, list(extra))


__all__ = ["Closable", "Started", "start"]
