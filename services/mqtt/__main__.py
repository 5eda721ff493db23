"""``python -m services.mqtt [--check-config]``: the MQTT bridge.

Reads :class:`~services.mqtt.settings.MqttSettings` (``FACEGATE_MQTT_*``),
then bridges every door that has a key file until SIGTERM or SIGINT, which
publish ``offline`` on the availability topic and exit 0. ``--check-config``
prints the validated settings with secrets masked and exits 0 (or the error
and 1). How it works: :mod:`services.mqtt.bridge`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from urllib.parse import urlsplit

from facegate.core.errors import ConfigError
from facegate.runtime.entrypoint import LOG_FORMAT
from services.mqtt.settings import MqttSettings

log = logging.getLogger("services.mqtt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.mqtt", description=__doc__)
    parser.add_argument("--check-config", action="store_true", help="validate settings and exit")
    args = parser.parse_args(argv)
    try:
        settings = MqttSettings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"facegate mqtt: configuration error: {exc}\n")
        return 1
    if args.check_config:
        sys.stdout.write(settings.describe_text() + "\n")
        return 0
    logging.basicConfig(level=settings.mqtt_log_level, format=LOG_FORMAT)
    from services.mqtt.app import build, health_server

    try:
        bridge = build(settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return 1
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = None
    if settings.mqtt_health_port:
        server = health_server(bridge, settings.mqtt_health_host, settings.mqtt_health_port)
    redis_at = urlsplit(settings.mqtt_redis_url)  # never log the URL's password
    log.info("bridging door events from redis %s:%s to %s (keys in %s)", redis_at.hostname,
             redis_at.port, settings.mqtt_url, settings.mqtt_keys_dir)
    try:
        bridge.run(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    log.info("bridge stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
