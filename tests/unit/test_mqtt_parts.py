"""The MQTT bridge's pure parts: settings, topics and payloads, discovery,
its files, and what its listener lets through (late) or refuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from facegate.clients.lock_state import LockState
from facegate.core.errors import ConfigError
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner
from services.mqtt.bridge import LATE, BridgeListener
from services.mqtt.settings import MqttSettings
from services.mqtt.state import Cursors, read_keys_dir, write_key_file
from services.mqtt.topics import Topics, discovery_messages, event_payload, messages_for

pytestmark = pytest.mark.unit

SIGNER = DoorSigner.derive("unit-test-secret-for-the-bridge-0123", "gate")


def event(*, person: str | None = "alice", issued: float | None = None, ttl: float = 30.0,
          stream_id: str = "1767000000000-0", event_id: str = "a" * 32) -> DoorEvent:
    now = time.time() if issued is None else issued
    return DoorEvent(
        id=event_id, upload_id="b" * 32, door="gate", camera="cam1",
        decision=Decision.OPEN if person else Decision.DENY,
        reason=Reason.GRANTED if person else Reason.UNKNOWN_PERSON,
        person=person, distance=0.3, issued_at=now, expires_at=now + ttl, stream_id=stream_id,
    )


# --------------------------------------------------------------------------- settings


def test_settings_defaults_and_tls() -> None:
    s = MqttSettings.from_env({})
    assert (s.host, s.port, s.tls, s.mqtt_tls_insecure) == ("127.0.0.1", 1883, False, False)
    t = MqttSettings.from_env({"FACEGATE_MQTT_URL": "mqtts://broker.lan",
                               "FACEGATE_MQTT_CA_FILE": "/etc/ca.pem"})
    assert (t.host, t.port, t.tls) == ("broker.lan", 8883, True)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FACEGATE_MQTT_URL": "http://broker:1883"}, "FACEGATE_MQTT_URL"),
        ({"FACEGATE_MQTT_URL": "mqtt://u:p@broker:1883"}, "no credentials in the URL"),
        ({"FACEGATE_MQTT_CA_FILE": "/ca.pem"}, "use mqtts://"),
        ({"FACEGATE_MQTT_TLS_INSECURE": "true"}, "use mqtts://"),
        ({"FACEGATE_MQTT_URL": "mqtts://b", "FACEGATE_MQTT_CERT_FILE": "/c.pem"}, "together"),
        ({"FACEGATE_MQTT_PASSWORD": "secret"}, "without FACEGATE_MQTT_USERNAME"),
        ({"FACEGATE_MQTT_TOPIC_PREFIX": "a/+/b"}, "FACEGATE_MQTT_TOPIC_PREFIX"),
        ({"FACEGATE_MQTT_NODE_ID": "a b"}, "FACEGATE_MQTT_NODE_ID"),
        ({"FACEGATE_MQTT_BROKER": "x"}, "not a facegate setting"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("+", r"\+")):
        MqttSettings.from_env(env)


def test_the_password_is_masked() -> None:
    s = MqttSettings.from_env({"FACEGATE_MQTT_USERNAME": "ha",
                               "FACEGATE_MQTT_PASSWORD": "a-long-broker-password"})
    assert "a-long-broker-password" not in s.describe_text()


# --------------------------------------------------------------------------- topics


def test_an_open_is_an_event_and_the_retained_last_person() -> None:
    topics = Topics("home/facegate", "homeassistant", "fg")
    e = event()
    first, second = messages_for(topics, e)
    assert (first.topic, first.retain) == ("home/facegate/gate/event", False)
    assert json.loads(first.payload) == event_payload(e)
    assert json.loads(first.payload)["event_type"] == "open"
    assert (second.topic, second.retain) == ("home/facegate/gate/last_person", True)
    assert json.loads(second.payload)["person"] == "alice"


def test_a_deny_leaves_the_last_person_alone() -> None:
    (only,) = messages_for(Topics(), event(person=None))
    assert only.topic == "facegate/gate/event"
    doc = json.loads(only.payload)
    assert (doc["event_type"], doc["reason"], doc["person"]) == ("deny", "unknown_person", None)


def test_discovery_configs() -> None:
    event_cfg, sensor_cfg = discovery_messages(Topics(node_id="fg"), "gate", "1.2")
    assert event_cfg.topic == "homeassistant/event/fg_gate/config" and event_cfg.retain
    assert sensor_cfg.topic == "homeassistant/sensor/fg_gate_last_person/config"
    e, s = json.loads(event_cfg.payload), json.loads(sensor_cfg.payload)
    assert e["event_types"] == ["open", "deny"] and e["state_topic"] == "facegate/gate/event"
    assert s["json_attributes_topic"] == s["state_topic"] == "facegate/gate/last_person"
    assert e["device"] == s["device"] and e["device"]["sw_version"] == "1.2"
    assert e["availability_topic"] == "facegate/bridge/availability"
    assert len({e["unique_id"], s["unique_id"]}) == 2
    assert e["default_entity_id"] == "event.fg_gate_access"
    assert s["default_entity_id"] == "sensor.fg_gate_last_person"


# --------------------------------------------------------------------------- files


def test_key_files_are_read_and_bad_ones_skipped(tmp_path: Path) -> None:
    other = DoorSigner.derive("unit-test-secret-for-the-bridge-0123", "gate", 2)
    write_key_file(tmp_path, "gate", [SIGNER.public_key.hex, other.public_key.hex])
    (tmp_path / "side.pub").write_text("# the side door\nnot-hex\n")
    (tmp_path / "a..b.pub").write_text(SIGNER.public_key.hex)
    (tmp_path / "back.pub").write_text("# nothing yet\n")
    found = read_keys_dir(tmp_path)
    assert list(found) == ["gate"]
    assert set(found["gate"]) == {SIGNER.kid, other.kid}
    assert read_keys_dir(tmp_path / "missing") == {}


def test_cursors_survive_and_refuse_a_second_bridge(tmp_path: Path) -> None:
    cursors = Cursors(tmp_path)
    assert cursors.get("gate") is None
    cursors.save("gate", "1767000000000-3")
    with pytest.raises(ConfigError, match="one bridge per state folder"):
        Cursors(tmp_path)
    cursors.close()
    again = Cursors(tmp_path)
    assert again.get("gate") == "1767000000000-3"
    (tmp_path / "gate.cursor").write_text("{garbage")
    with pytest.raises(ConfigError, match="fix or remove it"):
        again.get("gate")
    again.close()


# --------------------------------------------------------------------------- the listener


def listener(door: str = "gate") -> BridgeListener:
    return BridgeListener(None, door, SIGNER.public_key, state=LockState(door))  # type: ignore[arg-type]


def test_an_expired_but_authentic_event_passes_as_late() -> None:
    wire = SIGNER.sign(event(issued=time.time() - 120))
    item = listener().check(wire, "1767000000000-0")
    assert item.event is not None and item.detail == LATE and item.rejected is None


def test_a_fresh_event_is_not_late_and_a_replay_is_refused() -> None:
    wire = SIGNER.sign(event())
    door = listener()
    assert door.check(wire).detail == ""
    assert door.check(wire).rejected == "replayed"


def test_the_late_path_refuses_what_a_lock_refuses() -> None:
    old = event(issued=time.time() - 120)
    doc = json.loads(SIGNER.sign(old))
    doc["event"]["person"] = "mallory"
    assert listener().check(json.dumps(doc).encode()).rejected == "tampered"
    future = SIGNER.sign(event(issued=time.time() + 600))
    assert listener().check(future).rejected == "expired"
    attacker = DoorSigner.derive("another-secret-altogether-0123456789", "gate")
    assert listener().check(attacker.sign(old)).rejected == "unknown_key"
    assert listener().check(SIGNER.sign(old), "1767000000001-0").rejected == "tampered"


# --------------------------------------------------------------------------- the local stack


def test_the_stack_runs_the_bridge_only_with_a_broker_and_hands_it_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from facegate.tools.devstack import Stack, StackConfig
    from facegate.tools.devstack.mqtt import bridge_env

    config = StackConfig.for_tests(29460, state_dir=tmp_path, services=("redis",))
    assert Stack(config).process_names() == ["redis"]
    stack = Stack(dataclasses.replace(config, mqtt_url="mqtts://broker.lan:8883"))
    assert stack.process_names() == ["redis", "mqtt"]
    monkeypatch.setenv("FACEGATE_SIGNING_SECRET", "a-secret-the-bridge-must-never-see-0123")
    monkeypatch.setenv("FACEGATE_MQTT_USERNAME", "bridge")
    env = bridge_env(stack)
    assert not [k for k in env if k.startswith("FACEGATE_") and not k.startswith("FACEGATE_MQTT_")]
    assert env["FACEGATE_MQTT_URL"] == "mqtts://broker.lan:8883"
    assert env["FACEGATE_MQTT_USERNAME"] == "bridge"
    assert env["FACEGATE_MQTT_REDIS_URL"] == config.redis_url
    assert env["FACEGATE_MQTT_KEYS_DIR"] == str(stack.state_dir / "mqtt" / "keys")
    settings = MqttSettings.from_env({k: v for k, v in env.items() if k.startswith("FACEGATE_")})
    assert settings.tls and settings.mqtt_state_dir == stack.state_dir / "mqtt" / "state"


# --------------------------------------------------------------------------- one door's thread


class FakeCursors:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.saved: list[str] = []

    def save(self, door: str, stream_id: str) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        self.saved.append(stream_id)


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def publish(self, message: object, stop: object) -> bool:
        self.sent.append(message.topic)  # type: ignore[attr-defined]
        return True


def test_a_door_publishes_then_moves_its_cursor_and_refuses_what_is_not_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    from types import SimpleNamespace

    from services.mqtt.bridge import DoorBridge

    rejected: list[str] = []
    fake = SimpleNamespace(
        redis=None, topics=Topics(), publisher=FakePublisher(), cursors=FakeCursors(failures=1),
        count_rejected=lambda door, reason, detail: rejected.append(reason),
    )
    door = DoorBridge(fake, "gate", SIGNER.public_key)  # type: ignore[arg-type]
    door.cursor = "1767000000000-0"
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: False)
    fresh = door.listener.check(SIGNER.sign(event(stream_id="1767000000005-0")))
    assert door._handle(fresh)
    assert fake.publisher.sent == ["facegate/gate/event", "facegate/gate/last_person"]
    assert fake.cursors.saved == ["1767000000005-0"] and door.cursor == "1767000000005-0"
    older = door.listener.check(SIGNER.sign(event(stream_id="1767000000003-0",
                                                  event_id="c" * 32)))
    assert older.event is not None  # authentic and new to the process guard...
    assert door._handle(older)  # ...but not after the cursor: not published
    forged = door.listener.check(b'{"alg": "none"}')
    assert door._handle(forged)
    assert rejected == ["replayed", "malformed"] and len(fake.publisher.sent) == 2
