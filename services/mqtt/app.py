"""The bridge's composition root: settings -> Redis client, broker client,
state folder, :class:`~services.mqtt.bridge.Bridge`; and its ``/healthz``.

``GET /healthz`` answers 200 when the broker is connected and every bridged
door is subscribed to Redis, 503 otherwise; the body (JSON) says which,
how many events each door published, its cursor, and the events refused by
reason.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version

import redis

from services.mqtt.bridge import Bridge
from services.mqtt.publisher import Publisher
from services.mqtt.settings import MqttSettings
from services.mqtt.state import Cursors
from services.mqtt.topics import Topics


def _version() -> str:
    try:
        return version("facegate")
    except PackageNotFoundError:
        return "0"


def build(settings: MqttSettings) -> Bridge:
    """Everything the bridge runs on (nothing connects until ``run``)."""
    topics = Topics(settings.mqtt_topic_prefix, settings.mqtt_discovery_prefix,
                    settings.mqtt_node_id)
    client = redis.Redis.from_url(
        settings.mqtt_redis_url, socket_timeout=10.0, socket_connect_timeout=2.0
    )
    cursors = Cursors(settings.mqtt_state_dir)
    return Bridge(client, Publisher(settings, topics), cursors, settings, version=_version())


def health_server(bridge: Bridge, host: str, port: int) -> ThreadingHTTPServer:
    """``/healthz`` on ``host:port``, served by a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/healthz":
                self.send_error(404)
                return
            healthy, doc = bridge.health()
            body = json.dumps({"status": "ok" if healthy else "unavailable", **doc}).encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    return server


__all__ = ["build", "health_server"]
