"""``python -m services.encoder [--check-config] [--ready-file PATH] [celery worker args]``.

Builds the face engine (and the rest of the encoder app) in this process,
then starts the Celery worker on queue ``encode`` with the ``threads`` pool:
``FACEGATE_WORKER_CONCURRENCY`` threads, by default twice
``FACEGATE_BATCH_SIZE`` so one batch can fill while the previous one runs.
The ready file is written once the model is loaded and the worker consumes.
Scale out by starting more of these processes (one model each).
``--check-config`` prints the validated settings (secrets masked) and exits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from facegate.adapters.celery_app import ENCODE_QUEUE
from facegate.core.errors import ConfigError, FacegateError
from facegate.runtime.settings import EncoderSettings

log = logging.getLogger("services.encoder")


def worker_argv(settings: EncoderSettings, extra: list[str]) -> list[str]:
    concurrency = settings.worker_concurrency or max(2, 2 * settings.batch_size)
    return [
        "worker",
        "-Q",
        ENCODE_QUEUE,
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        settings.log_level,
        "--hostname",
        "encoder@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.encoder", description=__doc__)
    parser.add_argument("--check-config", action="store_true", help="validate settings and exit")
    parser.add_argument("--ready-file", type=Path, help="touch this file once the worker is ready")
    args, extra = parser.parse_known_args(argv)
    try:
        settings = EncoderSettings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"facegate encoder: configuration error: {exc}\n")
        return 1
    if args.check_config:
        sys.stdout.write(settings.describe_text() + "\n")
        return 0
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from celery.signals import worker_ready

    from services.encoder.app import build_celery
    from services.encoder.tasks import encoder_app

    try:
        app = encoder_app(settings)  # the model, once per process, before consuming
    except FacegateError as exc:
        sys.stderr.write(f"facegate encoder: cannot start: {exc}\n")
        return 1
    celery = build_celery(settings)
    ready_file: Path | None = args.ready_file

    @worker_ready.connect  # type: ignore[misc,untyped-decorator]
    def _ready(**_: Any) -> None:
        log.info(
            "encoder ready on queue %s: model %s, batch %d, wait %d ms",
            ENCODE_QUEUE,
            app.service.engine.model_id,
            settings.batch_size,
            settings.batch_wait_ms,
        )
        if ready_file is not None:
            ready_file.write_text("ready\n")

    try:
        celery.worker_main(worker_argv(settings, extra))
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
