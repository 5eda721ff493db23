"""The MQTT bridge against a real Mosquitto and a real Redis.

Events are recorded as the matcher records them (``RedisStore.record_decision``:
the door stream, pub/sub, Ed25519 with the stream id under the signature);
the bridge is ``python -m services.mqtt`` as its own process; a paho
subscriber (another broker user) counts what reaches the broker. Proven:

* an OPEN and a DENY reach ``<prefix>/<door>/event`` with their JSON; the
  OPEN's person is the retained ``last_person``; the Home Assistant
  discovery configs and ``online`` are retained;
* forged (another key) and tampered events are never published;
* ``kill -9`` of the bridge: the broker publishes the last will ``offline``;
* broker restart: the bridge reconnects and publishes the events recorded
  during the outage, each once;
* the bridge killed while the broker is down: what it had read but not
  delivered is published after its restart (the cursor waits for PUBACK);
* bridge restart (``kill -9``): nothing published before is published
  again; the events recorded while it was down are, once (an expired one
  marked ``late``);
* a door whose key file appears after the start is bridged;
* a wrong password is refused (nothing published); TLS with the test CA
  works, and a broker certificate from another CA is refused; a listener
  that requires a client certificate takes the bridge's;
* Redis restarted under the bridge: it reconnects and publishes what was
  recorded after, once.

Ports: ``FACEGATE_TEST_BASE_PORT`` + 40 (MQTT), + 41 (MQTT over TLS), + 42
(the bridge's /healthz), + 43 (TLS with client certificates), + 50 (Redis
of this module).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_broker import PASSWORD, USER, Broker, Subscriber, find_mosquitto, make_ca

from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.errors import RedisUnavailableError
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner
from facegate.tools.devstack import Stack, StackConfig, StackError, find_redis_server
from facegate.tools.settings import ToolSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE = ToolSettings.from_env().test_base_port
MQTT_PORT, TLS_PORT, HEALTH_PORT, MTLS_PORT = BASE + 40, BASE + 41, BASE + 42, BASE + 43
REDIS_BASE = BASE + 50
SECRET = "mqtt-integration-secret-0123456789"
SIGNERS = {door: DoorSigner.derive(SECRET, door) for door in ("gate", "side")}
_prefixes = itertools.count(1)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    if _in_ci():
        pytest.fail(f"{what} (CI=true: see scripts/ensure-mosquitto.sh, make install)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if find_mosquitto() is None:
        _missing("the MQTT tests need mosquitto (Debian package)")
    broker = Broker(tmp_path_factory.mktemp("mosquitto"), MQTT_PORT, TLS_PORT, MTLS_PORT)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def redis_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        find_redis_server()
    except StackError as exc:
        _missing(str(exc))
    stack = Stack(StackConfig.for_tests(REDIS_BASE, state_dir=tmp_path_factory.mktemp("redis"),
                                        services=("redis",), ready_timeout_s=30.0))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def store(redis_stack: Stack) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_stack.config.redis_url)
    store.client.flushdb()
    yield store
    store.close()


def record(store: RedisStore, door: str = "gate", *, person: str | None = None,
           ttl_s: float = 60.0, signer: DoorSigner | None = None) -> DoorEvent:
    """One decision recorded as the matcher records it: OPEN when ``person``."""
    now = time.time()
    event = DoorEvent(
        id=keys.new_upload_id(), upload_id=keys.new_upload_id(), door=door, camera="cam1",
        decision=Decision.OPEN if person else Decision.DENY,
        reason=Reason.GRANTED if person else Reason.UNKNOWN_PERSON,
        person=person, distance=0.31 if person else 0.82, issued_at=now, expires_at=now + ttl_s,
    )
    recorded = store.record_decision(event, (signer or SIGNERS[door]).sign)
    assert recorded is not None
    return recorded.event


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


class Bridge:
    """``python -m services.mqtt`` with its own environment."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, healthy: bool = True) -> Bridge:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.mqtt"], cwd=ROOT,
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        if healthy:
            wait_for(lambda: self.health()[0] == 200, f"a healthy bridge ({self.tail()})")
        else:
            wait_for(lambda: self.health()[0] == 503, "the bridge's /healthz")
        return self

    def health(self) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{HEALTH_PORT}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return 0, {}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def make_bridge(
    broker: Broker, store: RedisStore, redis_stack: Stack, tmp_path: Path
) -> Iterator[Callable[..., Bridge]]:
    """Bridges of this test: key files for ``gate``, a topic and discovery
    prefix of the test's own (retained messages of other tests stay apart)."""
    n = next(_prefixes)
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "gate.pub").write_text(SIGNERS["gate"].public_key.hex + "\n")
    started: list[Bridge] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    base.update({
        "FACEGATE_MQTT_URL": f"mqtt://127.0.0.1:{MQTT_PORT}",
        "FACEGATE_MQTT_USERNAME": USER,
        "FACEGATE_MQTT_PASSWORD": PASSWORD,
        "FACEGATE_MQTT_REDIS_URL": redis_stack.config.redis_url,
        "FACEGATE_MQTT_KEYS_DIR": str(keys_dir),
        "FACEGATE_MQTT_STATE_DIR": str(tmp_path / "state"),
        "FACEGATE_MQTT_TOPIC_PREFIX": f"t{n}",
        "FACEGATE_MQTT_DISCOVERY_PREFIX": f"ha{n}",
        "FACEGATE_MQTT_HEALTH_PORT": str(HEALTH_PORT),
        "FACEGATE_MQTT_RESCAN_S": "0.5",
        "FACEGATE_MQTT_CLIENT_ID": f"bridge-{n}",
    })

    def make(**overrides: str) -> Bridge:
        bridge = Bridge({**base, **overrides}, tmp_path / "bridge.log")
        started.append(bridge)
        return bridge

    make.prefix, make.ha, make.keys_dir = f"t{n}", f"ha{n}", keys_dir  # type: ignore[attr-defined]
    yield make
    for bridge in started:
        bridge.stop(signal.SIGKILL)


def ids_on(sub: Subscriber, topic: str) -> collections.Counter[str]:
    return collections.Counter(doc["event_id"] for doc in sub.on(topic))


# --------------------------------------------------------------------------- the topics


def test_open_and_deny_reach_their_topics_with_discovery(
    make_bridge: Any, store: RedisStore, broker: Broker
) -> None:
    p, ha = make_bridge.prefix, make_bridge.ha
    sub = Subscriber(MQTT_PORT, [f"{p}/#", f"{ha}/#"])
    bridge = make_bridge().start()
    opened = record(store, person="alice")
    denied = record(store)
    wait_for(lambda: len(sub.on(f"{p}/gate/event")) == 2, "two events")
    first, second = sub.on(f"{p}/gate/event")
    assert first == {
        "event_type": "open", "decision": "OPEN", "reason": "granted", "person": "alice",
        "distance": 0.31, "time": first["time"], "issued_at": opened.issued_at, "door": "gate",
        "camera": "cam1", "event_id": opened.id, "upload_id": opened.upload_id,
        "stream_id": opened.stream_id, "late": False,
    }
    assert first["time"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(opened.issued_at)))
    assert (second["event_type"], second["decision"], second["reason"], second["person"],
            second["event_id"]) == ("deny", "DENY", "unknown_person", None, denied.id)
    # the events are not retained; last_person is, and only the OPEN wrote it
    assert not sub.retained(f"{p}/gate/event")
    assert [d["person"] for d in sub.on(f"{p}/gate/last_person")] == ["alice"]
    late = Subscriber(MQTT_PORT, [f"{p}/#", f"{ha}/#"])
    wait_for(lambda: late.retained(f"{p}/gate/last_person"), "the retained last person")
    assert json.loads(late.retained(f"{p}/gate/last_person")[0])["event_id"] == opened.id
    assert late.retained(f"{p}/bridge/availability") == [b"online"]
    wait_for(lambda: late.retained(f"{ha}/sensor/facegate_gate_last_person/config"), "sensor")
    event_config = json.loads(late.retained(f"{ha}/event/facegate_gate/config")[0])
    sensor_config = json.loads(late.retained(f"{ha}/sensor/facegate_gate_last_person/config")[0])
    assert event_config["event_types"] == ["open", "deny"]
    assert event_config["state_topic"] == f"{p}/gate/event"
    assert sensor_config["state_topic"] == f"{p}/gate/last_person"
    assert sensor_config["value_template"] == "{{ value_json.person }}"
    assert event_config["unique_id"] != sensor_config["unique_id"]
    for config in (event_config, sensor_config):
        assert config["availability_topic"] == f"{p}/bridge/availability"
        assert config["device"]["identifiers"] == ["facegate_gate"]
    status, health = bridge.health()
    assert status == 200 and health["doors"]["gate"]["published"] == 2
    sub.close()
    late.close()


def test_forged_and_tampered_events_are_not_published(
    make_bridge: Any, store: RedisStore
) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"])
    bridge = make_bridge().start()
    attacker = DoorSigner.derive("an-attackers-own-secret-0123456789", "gate")
    record(store, person="mallory", signer=attacker)  # in the stream and live: another key
    genuine = SIGNERS["gate"].sign(
        DoorEvent(id=keys.new_upload_id(), upload_id=keys.new_upload_id(), door="gate",
                  decision=Decision.DENY, reason=Reason.UNKNOWN_PERSON, issued_at=time.time(),
                  expires_at=time.time() + 60, stream_id=f"{int(time.time() * 1000)}-0"))
    doc = json.loads(genuine)
    doc["event"].update(decision="OPEN", reason="granted", person="mallory")
    store.client.publish(keys.door_channel("gate"), json.dumps(doc))
    honest = record(store)
    wait_for(lambda: ids_on(sub, f"{p}/gate/event"), "the genuine event")
    time.sleep(0.5)
    assert ids_on(sub, f"{p}/gate/event") == {honest.id: 1}
    assert not sub.on(f"{p}/gate/last_person")
    assert bridge.health()[1]["rejected"] == {"unknown_key": 1, "tampered": 1}
    sub.close()


def test_the_last_will_says_offline_when_the_bridge_is_killed(make_bridge: Any) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/bridge/availability"])
    bridge = make_bridge().start()
    wait_for(lambda: sub.on(f"{p}/bridge/availability"), "online")
    bridge.stop(signal.SIGKILL)
    wait_for(lambda: {"raw": "offline"} in sub.on(f"{p}/bridge/availability"), "the last will")
    assert [d["raw"] for d in sub.on(f"{p}/bridge/availability")] == ["online", "offline"]
    sub.close()


# --------------------------------------------------------------------------- restarts


def test_broker_restart_publishes_the_missed_events_once(
    make_bridge: Any, store: RedisStore, broker: Broker
) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"], client_id=f"restart-sub-{p}", session=True)
    bridge = make_bridge().start()
    before = record(store, person="alice")
    wait_for(lambda: ids_on(sub, f"{p}/gate/event"), "the first event")
    time.sleep(0.3)  # the subscriber's PUBACK reaches the broker before it stops
    broker.stop()
    missed = [record(store, person="bob"), record(store), record(store, person="carol")]
    time.sleep(1.0)
    assert bridge.health()[1]["mqtt_connected"] is False
    broker.start()
    want = {e.id: 1 for e in [before, *missed]}
    wait_for(lambda: ids_on(sub, f"{p}/gate/event") == want, "the missed events", 40.0)
    time.sleep(1.0)
    assert ids_on(sub, f"{p}/gate/event") == want
    assert [d["person"] for d in sub.on(f"{p}/gate/event")] == ["alice", "bob", None, "carol"]
    health = bridge.health()[1]
    assert health["mqtt_connects"] >= 2 and health["doors"]["gate"]["published"] == 4
    sub.close()


def test_a_bridge_killed_while_the_broker_is_down_loses_nothing(
    make_bridge: Any, store: RedisStore, broker: Broker
) -> None:
    """The cursor moves only on the broker's acknowledgement: events the
    bridge had read but could not deliver are published after its restart."""
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"], client_id=f"kill-sub-{p}", session=True)
    bridge = make_bridge().start()
    first = record(store)
    wait_for(lambda: ids_on(sub, f"{p}/gate/event"), "the first event")
    time.sleep(0.3)
    broker.stop()
    stuck = [record(store, person="bob"), record(store)]
    time.sleep(1.0)  # the bridge has read the first of them and waits for the broker
    bridge.stop(signal.SIGKILL)
    broker.start()
    bridge.start()
    want = {e.id: 1 for e in [first, *stuck]}
    wait_for(lambda: ids_on(sub, f"{p}/gate/event") == want, "the undelivered events", 40.0)
    time.sleep(1.0)
    assert ids_on(sub, f"{p}/gate/event") == want
    sub.close()


def test_a_bridge_restart_republishes_nothing_and_catches_up(
    make_bridge: Any, store: RedisStore
) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"])
    bridge = make_bridge().start()
    early = [record(store, person="alice"), record(store)]
    wait_for(lambda: len(ids_on(sub, f"{p}/gate/event")) == 2, "the first events")
    # the cursor is written just after the broker's PUBACK: kill once it is
    # (killed in between, the last event would be published again: at least once)
    wait_for(lambda: bridge.health()[1]["doors"]["gate"]["cursor"] == early[1].stream_id,
             "the cursor")
    bridge.stop(signal.SIGKILL)
    while_down = [record(store, person="bob"), record(store, ttl_s=0.2)]
    time.sleep(0.5)  # the second one expires before the bridge is back
    bridge.start()
    after = record(store, person="carol")
    want = {e.id: 1 for e in [*early, *while_down, after]}
    wait_for(lambda: ids_on(sub, f"{p}/gate/event") == want, "the caught-up events")
    time.sleep(1.0)
    assert ids_on(sub, f"{p}/gate/event") == want
    late = {d["event_id"]: d["late"] for d in sub.on(f"{p}/gate/event")}
    assert late == {early[0].id: False, early[1].id: False, while_down[0].id: False,
                    while_down[1].id: True, after.id: False}
    sub.close()


def test_a_door_whose_key_appears_later_is_bridged(make_bridge: Any, store: RedisStore) -> None:
    p, ha = make_bridge.prefix, make_bridge.ha
    sub = Subscriber(MQTT_PORT, [f"{p}/#", f"{ha}/#"])
    bridge = make_bridge().start()
    record(store, "side", person="dave")  # not bridged yet: no key
    (make_bridge.keys_dir / "side.pub").write_text(SIGNERS["side"].public_key.hex + "\n")
    wait_for(lambda: bridge.health()[1].get("doors", {}).get("side", {}).get("subscribed"),
             "the new door")
    added = record(store, "side", person="erin")
    wait_for(lambda: sub.on(f"{p}/side/event"), "the new door's event")
    assert ids_on(sub, f"{p}/side/event") == {added.id: 1}
    assert sub.on(f"{ha}/event/facegate_side/config")
    sub.close()


# --------------------------------------------------------------------------- credentials, TLS


def test_a_wrong_password_is_refused(make_bridge: Any, store: RedisStore) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"])
    bridge = make_bridge(FACEGATE_MQTT_PASSWORD="not-the-password").start(healthy=False)
    wait_for(lambda: bridge.health()[1].get("mqtt_refused"), "the refusal")
    record(store, person="alice")
    time.sleep(1.5)
    status, health = bridge.health()
    assert status == 503 and health["mqtt_connected"] is False
    assert "authori" in health["mqtt_refused"].lower()
    assert sub.messages == []
    sub.close()


def test_tls_with_the_test_ca_and_not_with_another(
    make_bridge: Any, store: RedisStore, broker: Broker, tmp_path: Path
) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"])
    tls = {"FACEGATE_MQTT_URL": f"mqtts://127.0.0.1:{TLS_PORT}"}
    bridge = make_bridge(**tls, FACEGATE_MQTT_CA_FILE=str(broker.ca_file)).start()
    sent = record(store, person="alice")
    wait_for(lambda: ids_on(sub, f"{p}/gate/event") == {sent.id: 1}, "the event over TLS")
    bridge.stop()
    other_ca, _, _ = make_ca(tmp_path, "other-ca")
    wrong = make_bridge(**tls, FACEGATE_MQTT_CA_FILE=str(other_ca)).start(healthy=False)
    time.sleep(2.0)
    status, health = wrong.health()
    assert (status, health["mqtt_connected"], health["mqtt_connects"]) == (503, False, 0)
    sub.close()


def test_a_client_certificate_where_the_broker_requires_one(
    make_bridge: Any, store: RedisStore, broker: Broker
) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"])
    mtls = {"FACEGATE_MQTT_URL": f"mqtts://127.0.0.1:{MTLS_PORT}",
            "FACEGATE_MQTT_CA_FILE": str(broker.ca_file)}
    without = make_bridge(**mtls).start(healthy=False)
    time.sleep(2.0)
    assert without.health()[1]["mqtt_connects"] == 0
    without.stop()
    bridge = make_bridge(**mtls, FACEGATE_MQTT_CERT_FILE=str(broker.client_cert),
                         FACEGATE_MQTT_KEY_FILE=str(broker.client_key)).start()
    sent = record(store)
    wait_for(lambda: ids_on(sub, f"{p}/gate/event") == {sent.id: 1}, "the event over mTLS")
    assert bridge.health()[1]["mqtt_connects"] == 1
    sub.close()


# --------------------------------------------------------------------------- Redis restart


def test_redis_restarted_under_the_bridge(
    make_bridge: Any, store: RedisStore, redis_stack: Stack
) -> None:
    p = make_bridge.prefix
    sub = Subscriber(MQTT_PORT, [f"{p}/#"])
    make_bridge().start()
    before = record(store, person="alice")
    wait_for(lambda: ids_on(sub, f"{p}/gate/event"), "the first event")
    redis_stack.kill("redis")
    redis_stack.start("redis")  # the AOF keeps the stream
    after = []
    deadline = time.monotonic() + 20
    while len(after) < 2 and time.monotonic() < deadline:
        try:
            after.append(record(store, person="bob" if not after else None))
        except RedisUnavailableError:
            time.sleep(0.1)
    want = {e.id: 1 for e in [before, *after]}
    wait_for(lambda: ids_on(sub, f"{p}/gate/event") == want, "the events after the restart")
    time.sleep(1.0)
    assert ids_on(sub, f"{p}/gate/event") == want
    sub.close()
