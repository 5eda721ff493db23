"""The broker side of the bridge: one paho-mqtt client, QoS 1 publishes that
return only once the broker acknowledged them (PUBACK).

paho keeps every QoS 1 message it has not seen acknowledged and sends it
again after a reconnect (its network thread reconnects by itself, 0.5 s
doubling to 10 s), so :meth:`Publisher.publish` simply waits for the
acknowledgement of the message's id, however many reconnects that takes,
or until the bridge stops. Acknowledgements are gathered by ``on_publish``
(the message id); the publishing thread never holds a lock paho's thread
needs.

The last will is ``offline`` (retained, QoS 1) on the availability topic:
the broker publishes it when the bridge's connection dies without a
DISCONNECT (``kill -9``, a network cut). Each (re)connect publishes
``online`` and every retained message the bridge published so far
(discovery configs, last persons), so a broker that restarted without
persistence has them again.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from services.mqtt.settings import MqttSettings
from services.mqtt.topics import OFFLINE, ONLINE, Message, Topics

log = logging.getLogger(__name__)

_QUEUED = (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
"""Publish results that mean "paho holds the message and will send it"."""


def make_client(settings: MqttSettings, topics: Topics) -> mqtt.Client:
    """A paho client with the settings' credentials, TLS and last will (not connected)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.mqtt_client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    if settings.mqtt_username is not None:
        password = settings.mqtt_password
        client.username_pw_set(
            settings.mqtt_username, None if password is None else password.get_secret_value()
        )
    if settings.tls:
        client.tls_set(
            ca_certs=None if settings.mqtt_ca_file is None else str(settings.mqtt_ca_file),
            certfile=None if settings.mqtt_cert_file is None else str(settings.mqtt_cert_file),
            keyfile=None if settings.mqtt_key_file is None else str(settings.mqtt_key_file),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(settings.mqtt_tls_insecure)
    client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


class Publisher:
    """Publish and wait for the broker's acknowledgement, across reconnects."""

    def __init__(self, settings: MqttSettings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self.client = make_client(settings, topics)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self._fail_logged = False
        self.connected = threading.Event()
        self.connects = 0
        """Successful connections so far (1 + reconnects)."""
        self.refused: str | None = None
        """Why the broker last refused the connection (bad credentials...)."""
        self._acks = threading.Condition()
        self._acked: set[int] = set()
        self._unwaited: set[int] = set()
        """Ids of messages nobody waits for (sent from ``on_connect``)."""
        self._retained: dict[str, Message] = {}
        self._retained_lock = threading.Lock()

    # --- paho's callbacks (its network thread) ------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.refused = str(reason)
            log.error("the broker %s refused the connection: %s", self.settings.mqtt_url, reason)
            return
        self.refused = None
        self._fail_logged = False
        self.connects += 1
        log.info("connected to %s (connection %d)", self.settings.mqtt_url, self.connects)
        with self._retained_lock:
            again = list(self._retained.values())
        sent = [client.publish(self.topics.availability, ONLINE, qos=1, retain=True)]
        sent += [client.publish(m.topic, m.payload, qos=1, retain=True) for m in again]
        with self._acks:  # this thread handles their PUBACKs later: no race
            self._unwaited.update(info.mid for info in sent)
        self.connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if not self._fail_logged:  # once per outage; paho retries (1 s doubling to 10 s)
            self._fail_logged = True
            log.warning("cannot connect to %s (address, network or TLS certificate); retrying",
                        self.settings.mqtt_url)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self.connected.is_set():
            log.warning("lost the broker %s (%s); reconnecting", self.settings.mqtt_url, reason)
        self.connected.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        with self._acks:
            if mid in self._unwaited:
                self._unwaited.discard(mid)
                return
            self._acked.add(mid)
            self._acks.notify_all()

    # --- the bridge's side ---------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (and keep reconnecting)."""
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()

    def publish(self, message: Message, stop: threading.Event) -> bool:
        """Publish with QoS 1; ``True`` once the broker acknowledged it,
        ``False`` when ``stop`` was set first (it may still reach the broker)."""
        if message.retain:
            with self._retained_lock:
                self._retained[message.topic] = message
        while not stop.is_set():
            info = self.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            if info.rc not in _QUEUED:
                log.warning("publish to %s failed (%s); again in 1 s", message.topic,
                            mqtt.error_string(info.rc))
                stop.wait(1.0)
                continue
            return self._wait_ack(info.mid, stop, None)
        return False

    def _wait_ack(self, mid: int, stop: threading.Event | None, timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._acks:
            while mid not in self._acked:
                if (stop is not None and stop.is_set()) or (
                    deadline is not None and time.monotonic() > deadline
                ):
                    return False
                self._acks.wait(0.2)
            self._acked.discard(mid)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Say ``offline`` (a clean stop: no last will) and disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._wait_ack(info.mid, None, timeout_s)
        self.client.disconnect()
        self.client.loop_stop()


__all__ = ["Publisher", "make_client"]
