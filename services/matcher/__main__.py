"""``python -m services.matcher [--check-config] [--ready-file PATH] [celery worker args]``.

Starts the Celery worker in this process on queue ``match``: pool ``solo``
by default, or ``threads`` with ``FACEGATE_WORKER_CONCURRENCY`` > 1 (the
gallery is shared by the threads). Extra arguments go to ``celery worker``.
``--check-config`` prints the validated settings (secrets masked) and exits
0, or prints the error and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from facegate.adapters.celery_app import MATCH_QUEUE
from facegate.core.errors import ConfigError
from facegate.runtime.settings import MatcherSettings

log = logging.getLogger("services.matcher")


def worker_argv(settings: MatcherSettings, extra: list[str]) -> list[str]:
    concurrency = settings.worker_concurrency or 1
    pool = "solo" if concurrency <= 1 else "threads"
    return [
        "worker",
        "-Q",
        MATCH_QUEUE,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        settings.log_level,
        "--hostname",
        "matcher@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.matcher", description=__doc__)
    parser.add_argument("--check-config", action="store_true", help="validate settings and exit")
    parser.add_argument("--ready-file", type=Path, help="touch this file once the worker is ready")
    args, extra = parser.parse_known_args(argv)
    try:
        settings = MatcherSettings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"facegate matcher: configuration error: {exc}\n")
        return 1
    if args.check_config:
        sys.stdout.write(settings.describe_text() + "\n")
        return 0
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from celery.signals import worker_ready

    from services.matcher.app import build_celery

    celery = build_celery(settings)
    ready_file: Path | None = args.ready_file

    @worker_ready.connect  # type: ignore[misc,untyped-decorator]
    def _ready(**_: Any) -> None:
        log.info("matcher ready on queue %s", MATCH_QUEUE)
        if ready_file is not None:
            ready_file.write_text("ready\n")

    celery.worker_main(worker_argv(settings, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
