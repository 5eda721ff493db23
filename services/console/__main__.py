"""``python -m services.console [--check-config]``: the operators' console.

Reads :class:`~services.console.settings.ConsoleSettings`, wires the
console once (:func:`services.console.app.build`) and serves it with
uvicorn on ``FACEGATE_CONSOLE_HOST:FACEGATE_CONSOLE_PORT`` until SIGTERM or
SIGINT. ``--check-config`` prints the validated settings and exits.
"""

from __future__ import annotations

import logging

from facegate.runtime.entrypoint import start
from services.console.settings import ConsoleSettings

log = logging.getLogger("services.console")


def main(argv: list[str] | None = None) -> int:
    started = start("console", ConsoleSettings, argv, description=__doc__)
    if isinstance(started, int):
        return started
    settings = started.settings
    import uvicorn

    from services.console.app import build, create_app

    console = build(settings)
    try:
        log.info("console on http://%s:%d", settings.console_host, settings.console_port)
        uvicorn.run(
            create_app(console),
            host=settings.console_host,
            port=settings.console_port,
            log_level=settings.log_level.lower(),
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        console.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
