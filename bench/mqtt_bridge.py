"""What the MQTT bridge adds after a door event is recorded: its latency, and
how fast it drains a backlog (after a broker or bridge outage).

``python bench/mqtt_bridge.py [--smoke] [--events N] [--backlog M] [--base-port P] [--out FILE]``.
Starts its own Redis (``P``), Mosquitto (``P + 1``, anonymous, loopback) and
``python -m services.mqtt`` (``/healthz`` on ``P + 2``), then:

- ``latency_ms``: ``N`` events recorded one every 20 ms as the matcher
  records them (``RedisStore.record_decision``: Lua, stream, pub/sub,
  Ed25519); the time from just before each record to its arrival at a
  subscriber of ``facegate/front/event``: the bridge's check, the QoS 1
  publish and the broker's delivery (the cursor is written after the
  PUBACK, in parallel with the delivery);
- ``backlog_per_s``: ``M`` events recorded while the bridge is stopped,
  then the bridge started: events per second from its start (ready) to the
  last arrival (catch-up from the stream, each event published, its PUBACK
  awaited and the cursor ``fsync``-ed before the next).

Exits 1 unless every event arrived exactly once. Writes JSON (default
``bench/results/mqtt_bridge.json``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from machine import describe, machine_facts
from paho.mqtt.enums import CallbackAPIVersion

from facegate.adapters.redis_store import RedisStore
from facegate.core import keys
from facegate.core.messages import Decision, DoorEvent, Reason
from facegate.core.signing import DoorSigner
from facegate.tools.devstack import Stack, StackConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "mqtt_bridge.json"
SIGNER = DoorSigner.derive("bench-mqtt-bridge-secret-0123456789", "front")


def record(store: RedisStore, n: int) -> str:
    now = time.time()
    event = DoorEvent(
        id=keys.new_upload_id(), upload_id=keys.new_upload_id(), door="front", camera="cam1",
        decision=Decision.OPEN if n % 2 else Decision.DENY,
        reason=Reason.GRANTED if n % 2 else Reason.UNKNOWN_PERSON,
        person="alice" if n % 2 else None, distance=0.3, issued_at=now, expires_at=now + 30,
    )
    recorded = store.record_decision(event, SIGNER.sign)
    assert recorded is not None
    return recorded.event.id


class Heard:
    """A subscriber that notes when each event id arrived."""

    def __init__(self, port: int) -> None:
        self.at: dict[str, float] = {}
        self.count: collections.Counter[str] = collections.Counter()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")
        self.client.on_connect = lambda c, *a: c.subscribe("facegate/front/event", qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("subscriber not ready")

    def _message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        event_id = json.loads(msg.payload)["event_id"]
        self.at.setdefault(event_id, time.perf_counter())
        self.count[event_id] += 1

    def wait(self, ids: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(i in self.at for i in ids) and time.monotonic() < deadline:
            time.sleep(0.005)


def start_bridge(env: dict[str, str], health: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.mqtt"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health, timeout=1) as reply:
                if reply.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"bridge not ready: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def bench(events: int, backlog: int, base_port: int, work: Path) -> dict[str, Any]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {base_port + 1} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence false\nlog_dest file {work / 'mosquitto.log'}\n")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    stack = Stack(StackConfig.for_tests(base_port, state_dir=work / "stack",
                                        services=("redis",), ready_timeout_s=30.0))
    stack.up()
    (work / "keys").mkdir()
    (work / "keys" / "front.pub").write_text(SIGNER.public_key.hex + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update({
        "FACEGATE_MQTT_URL": f"mqtt://127.0.0.1:{base_port + 1}",
        "FACEGATE_MQTT_REDIS_URL": stack.config.redis_url,
        "FACEGATE_MQTT_KEYS_DIR": str(work / "keys"),
        "FACEGATE_MQTT_STATE_DIR": str(work / "state"),
        "FACEGATE_MQTT_HEALTH_PORT": str(base_port + 2),
        "FACEGATE_MQTT_LOG_LEVEL": "WARNING",
    })
    health = f"http://127.0.0.1:{base_port + 2}/healthz"
    store = RedisStore.from_url(stack.config.redis_url)
    try:
        time.sleep(0.3)  # the broker listens
        heard = Heard(base_port + 1)
        bridge = start_bridge(env, health, work / "bridge.log")
        latencies = []
        live_ids = []
        for n in range(events):
            t0 = time.perf_counter()
            event_id = record(store, n)
            live_ids.append(event_id)
            heard.wait([event_id], 10.0)
            latencies.append(heard.at.get(event_id, float("inf")) - t0)
            time.sleep(0.02)
        stop(bridge)
        backlog_ids = [record(store, n) for n in range(backlog)]
        t0 = time.perf_counter()
        bridge = start_bridge(env, health, work / "bridge.log")
        ready = time.perf_counter()
        heard.wait(backlog_ids, 120.0)
        last = max(heard.at.get(i, float("inf")) for i in backlog_ids)
        stop(bridge)
        heard.client.loop_stop()
    finally:
        store.close()
        stack.down()
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=10)
    ordered = sorted(latencies)
    all_ids = live_ids + backlog_ids
    return {
        "events": events,
        "latency_ms": {"median": round(statistics.median(ordered) * 1e3, 2),
                       "p95": round(ordered[max(0, int(0.95 * len(ordered)) - 1)] * 1e3, 2),
                       "max": round(ordered[-1] * 1e3, 2)},
        "backlog": backlog,
        "bridge_start_s": round(ready - t0, 2),
        "backlog_drain_s": round(last - ready, 3),
        "backlog_per_s": round(backlog / (last - ready), 1) if last > ready else 0.0,
        "lost": sum(1 for i in all_ids if heard.count[i] == 0),
        "duplicated": sum(1 for i in all_ids if heard.count[i] > 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds in all")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--base-port", type=int, default=27480)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    events, backlog = (20, 50) if args.smoke else (args.events, args.backlog)
    with tempfile.TemporaryDirectory() as tmp:
        result = bench(events, backlog, args.base_port, Path(tmp))
    doc = {"benchmark": "mqtt_bridge", "smoke": args.smoke, "machine": machine_facts(),
           "results": result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    r = result
    print(f"machine: {describe(doc['machine'])}")
    print(f"record -> MQTT subscriber, {r['events']} events one by one: median "
          f"{r['latency_ms']['median']} ms, p95 {r['latency_ms']['p95']} ms, "
          f"max {r['latency_ms']['max']} ms")
    print(f"backlog of {r['backlog']} events after a bridge restart: drained in "
          f"{r['backlog_drain_s']} s ({r['backlog_per_s']} events/s; bridge ready in "
          f"{r['bridge_start_s']} s)")
    print(f"lost {r['lost']}, duplicated {r['duplicated']}; wrote {args.out}")
    return 0 if r["lost"] == r["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
