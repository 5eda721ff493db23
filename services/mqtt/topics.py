"""What the bridge publishes: topic names, payloads, Home Assistant discovery.

Pure functions of a verified :class:`~facegate.core.messages.DoorEvent` and
the settings' names (no MQTT here)::

    <prefix>/<door>/event          each event, QoS 1, not retained
    <prefix>/<door>/last_person    the person of the door's last OPEN, QoS 1, retained
    <prefix>/bridge/availability   "online" / "offline" (the last will), retained
    <discovery>/event/<node>_<door>/config               Home Assistant event entity
    <discovery>/sensor/<node>_<door>_last_person/config  Home Assistant sensor

Door names are ``[A-Za-z0-9_-]`` (:func:`facegate.core.keys.check_door`), so
they never carry a topic separator or wildcard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from facegate.core.messages import DoorEvent

EVENT_TYPES: Final = ("open", "deny")
"""The Home Assistant event types: the decision, lower case."""
ONLINE: Final = "online"
OFFLINE: Final = "offline"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class Topics:
    prefix: str = "facegate"
    discovery_prefix: str = "homeassistant"
    node_id: str = "facegate"

    def event(self, door: str) -> str:
        return f"{self.prefix}/{door}/event"

    def last_person(self, door: str) -> str:
        return f"{self.prefix}/{door}/last_person"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/bridge/availability"

    def event_config(self, door: str) -> str:
        return f"{self.discovery_prefix}/event/{self.node_id}_{door}/config"

    def sensor_config(self, door: str) -> str:
        return f"{self.discovery_prefix}/sensor/{self.node_id}_{door}_last_person/config"


def _time(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def event_payload(event: DoorEvent, *, late: bool = False) -> dict[str, Any]:
    """The JSON of ``<prefix>/<door>/event``. ``event_type`` is what Home
    Assistant's event entity reads; ``late``: the event had expired when the
    bridge read it (published after a bridge outage; a lock would not act on it)."""
    return {
        "event_type": event.decision.value.lower(),
        "decision": event.decision.value,
        "reason": event.reason.value,
        "person": event.person,
        "distance": event.distance,
        "time": _time(event.issued_at),
        "issued_at": event.issued_at,
        "door": event.door,
        "camera": event.camera,
        "event_id": event.id,
        "upload_id": event.upload_id,
        "stream_id": event.stream_id,
        "late": late,
    }


def messages_for(topics: Topics, event: DoorEvent, *, late: bool = False) -> list[Message]:
    """What one verified event becomes: the event, then (an OPEN only) the
    retained last person. A DENY leaves ``last_person`` as it was: the
    sensor answers "who last came in", and a refused face has no name."""
    out = [Message(topics.event(event.door), _json(event_payload(event, late=late)), False)]
    if event.granted and event.person is not None:
        doc = {
            "person": event.person,
            "time": _time(event.issued_at),
            "distance": event.distance,
            "event_id": event.id,
        }
        out.append(Message(topics.last_person(event.door), _json(doc), True))
    return out


def discovery_messages(topics: Topics, door: str, version: str) -> list[Message]:
    """The retained Home Assistant discovery configs of ``door``: an event
    entity (event types ``open``, ``deny``) and a last-person sensor, one
    device per door, both unavailable while the bridge is offline. Entity
    ids are suggested with ``default_entity_id`` (Home Assistant 2025.10 on;
    its older ``object_id`` is no longer read since 2026.4)."""
    device = {
        "identifiers": [f"{topics.node_id}_{door}"],
        "name": f"facegate {door}",
        "manufacturer": "facegate",
        "model": "face-recognition door",
        "sw_version": version,
    }
    availability = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    event_config = {
        "name": "Access",
        "unique_id": f"{topics.node_id}_{door}_event",
        "default_entity_id": f"event.{topics.node_id}_{door}_access",
        "state_topic": topics.event(door),
        "event_types": list(EVENT_TYPES),
        "qos": 1,
        "device": device,
        **availability,
    }
    sensor_config = {
        "name": "Last person",
        "unique_id": f"{topics.node_id}_{door}_last_person",
        "default_entity_id": f"sensor.{topics.node_id}_{door}_last_person",
        "state_topic": topics.last_person(door),
        "value_template": "{{ value_json.person }}",
        "json_attributes_topic": topics.last_person(door),
        "icon": "mdi:account-key",
        "qos": 1,
        "device": device,
        **availability,
    }
    return [
        Message(topics.event_config(door), _json(event_config), True),
        Message(topics.sensor_config(door), _json(sensor_config), True),
    ]


__all__ = [
    "EVENT_TYPES",
    "OFFLINE",
    "ONLINE",
    "Message",
    "Topics",
    "discovery_messages",
    "event_payload",
    "messages_for",
]
