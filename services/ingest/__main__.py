"""``python -m services.ingest [--check-config]``: the ingest HTTP service.

Reads :class:`~facegate.runtime.settings.IngestSettings` from the environment, makes
sure the uploads bucket exists (bounded wait for the store), starts the
reconciler thread (``reconciler.py``), then serves on
``FACEGATE_INGEST_HOST:FACEGATE_INGEST_PORT`` until SIGTERM or SIGINT, which
finish the requests in flight and exit 0. ``--check-config`` prints the
validated settings with secrets masked and exits 0 (or the error and 1).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from facegate.core.errors import ConfigError, TransientError
from facegate.runtime.entrypoint import start
from services.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from services.ingest.app import IngestApp

log = logging.getLogger("services.ingest")

STORE_WAIT_S = 30.0


def _ensure_bucket(app: IngestApp, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            app.store.ensure_bucket()
            return
        except TransientError as exc:
            if time.monotonic() > deadline:
                raise
            log.info("object store not ready yet (%s); retrying", exc)
            time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    started = start("ingest", IngestSettings, argv, description=__doc__)
    if isinstance(started, int):
        return started
    settings = started.settings
    from services.ingest.app import build
    from services.ingest.http import make_server
    from services.ingest.reconciler import start_reconciler

    app = build(settings)
    try:
        _ensure_bucket(app, STORE_WAIT_S)
    except (TransientError, ConfigError) as exc:
        log.error("object store unusable: %s", exc)
        app.close()
        return 1
    server = make_server(app, settings.ingest_host, settings.ingest_port)
    stop_reconciler = threading.Event()
    reconciler = start_reconciler(app, stop_reconciler)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info(
        "ingest listening on http://%s:%d (bucket %s, notifications %s)",
        settings.ingest_host,
        settings.ingest_port,
        settings.bucket,
        settings.notifications,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop_reconciler.set()
        if reconciler is not None:
            reconciler.join(timeout=10.0)
        server.server_close()
        app.close()
    log.info("ingest stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
