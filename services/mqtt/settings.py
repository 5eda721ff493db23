"""The MQTT bridge's settings (``FACEGATE_MQTT_*``; see :mod:`facegate.runtime.settings`).

The bridge holds no facegate secret: it reads door events with a lock's
Redis credentials and checks them with the doors' public keys, so its
settings class stands alone (not :class:`~facegate.runtime.settings.CommonSettings`,
which requires the S3 keys and the signing secret).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, model_validator

from facegate.runtime.settings import OptionalPath, RedisUrl, Settings

_TOPIC_PART = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z")
_NODE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def _mqtt_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("want mqtt://host:port or mqtts://host:port (TLS)")
    if parts.username or parts.password:
        raise ValueError(
            "no credentials in the URL: use FACEGATE_MQTT_USERNAME and FACEGATE_MQTT_PASSWORD"
        )
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("want mqtt://host:port without path or query")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError("bad port") from exc
    return url


def _topic_prefix(prefix: str) -> str:
    if not _TOPIC_PART.match(prefix):
        raise ValueError("letters, digits, _ and - in /-separated levels (no wildcards)")
    return prefix


def _node(node: str) -> str:
    if not _NODE.match(node):
        raise ValueError("1-64 letters, digits, _ or -")
    return node


MqttUrl = Annotated[str, AfterValidator(_mqtt_url)]
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]
NodeId = Annotated[str, AfterValidator(_node)]


class MqttSettings(Settings):
    """The MQTT bridge: door events -> MQTT topics and Home Assistant discovery."""

    mqtt_url: MqttUrl = Field(
        "mqtt://127.0.0.1:1883", description="the broker; mqtts:// for TLS"
    )
    mqtt_username: str | None = Field(None, description="broker user (none: anonymous)")
    mqtt_password: SecretStr | None = Field(None, description="broker password")
    mqtt_ca_file: OptionalPath = Field(
        None, description="CA bundle that signed the broker's certificate (default: system CAs)"
    )
    mqtt_cert_file: OptionalPath = Field(None, description="client certificate (mutual TLS)")
    mqtt_key_file: OptionalPath = Field(None, description="the client certificate's key")
    mqtt_tls_insecure: bool = Field(
        False, description="skip the broker certificate's host name check (never in production)"
    )
    mqtt_client_id: str = Field("facegate-bridge", min_length=1, max_length=64)
    mqtt_topic_prefix: TopicPrefix = Field("facegate", description="<prefix>/<door>/event")
    mqtt_discovery: bool = Field(True, description="publish Home Assistant discovery configs")
    mqtt_discovery_prefix: TopicPrefix = Field("homeassistant")
    mqtt_node_id: NodeId = Field("facegate", description="Home Assistant ids: <node>_<door>")
    mqtt_redis_url: RedisUrl = Field(
        "redis://127.0.0.1:6390/0",
        description="where the door events are (a lock's credentials are enough)",
    )
    mqtt_keys_dir: Path = Field(
        Path("mqtt-keys"),
        description="<door>.pub files: each door's Ed25519 public key(s), 64 hex a line; "
        "a door is bridged while its file is there",
    )
    mqtt_state_dir: Path = Field(
        Path("mqtt-state"), description="the last stream id published per door"
    )
    mqtt_rescan_s: float = Field(
        5.0, ge=0.2, le=3600.0, description="how often the keys folder is read again"
    )
    mqtt_health_host: str = Field("127.0.0.1", description="the /healthz listener")
    mqtt_health_port: int = Field(18790, ge=0, le=65535, description="0: no /healthz")
    mqtt_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _tls_needs_mqtts(self) -> Self:
        tls_files = (self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)
        if not self.tls and (any(f is not None for f in tls_files) or self.mqtt_tls_insecure):
            raise ValueError("TLS settings given with an mqtt:// URL: use mqtts://")
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise ValueError("FACEGATE_MQTT_CERT_FILE and FACEGATE_MQTT_KEY_FILE go together")
        if self.mqtt_password is not None and self.mqtt_username is None:
            raise ValueError("FACEGATE_MQTT_PASSWORD without FACEGATE_MQTT_USERNAME")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.mqtt_url).port or (8883 if self.tls else 1883)


__all__ = ["MqttSettings"]
