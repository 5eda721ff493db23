"""End to end to MQTT: uploads decided by the real pipeline reach a real
Mosquitto through the bridge as the local stack starts it
(:mod:`facegate.tools.devstack.mqtt`: the doors' public keys written from
the stack's secret, only ``FACEGATE_MQTT_*`` handed to the bridge).

Ports: ``FACEGATE_E2E_BASE_PORT`` + 40 (MQTT), + 41 (TLS), + 42 (/healthz).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_site import Site
from mqtt_broker import PASSWORD, USER, Broker, Subscriber, find_mosquitto

from facegate.core.policy import DoorMode, DoorPolicy
from facegate.tools.devstack import Stack
from facegate.tools.settings import ToolSettings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

BASE = ToolSettings.from_env().e2e_base_port
MQTT_PORT, TLS_PORT, HEALTH_PORT = BASE + 40, BASE + 41, BASE + 42


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if find_mosquitto() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("the MQTT e2e test needs mosquitto (CI=true)")
        pytest.skip("the MQTT e2e test needs mosquitto (Debian package)")
    broker = Broker(tmp_path / "mosquitto", MQTT_PORT, TLS_PORT)
    broker.start()
    yield broker
    broker.stop()


def test_decisions_of_the_pipeline_reach_mqtt(
    site: Site, samples_dir: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = {n: (samples_dir / n).read_bytes() for n in ("obama.jpg", "obama3.jpg", "biden.jpg")}
    site.admin.set_door(DoorPolicy("porch", DoorMode.VERIFY, frozenset(), 0.6))
    site.admin.enroll("mqtt_guest", [("obama.jpg", photos["obama.jpg"])], doors=["porch"])
    for name, value in {"FACEGATE_MQTT_USERNAME": USER, "FACEGATE_MQTT_PASSWORD": PASSWORD,
                        "FACEGATE_MQTT_HEALTH_PORT": str(HEALTH_PORT),
                        "FACEGATE_MQTT_TOPIC_PREFIX": "e2e"}.items():
        monkeypatch.setenv(name, value)
    stack = Stack(dataclasses.replace(site.stack.config,
                                      mqtt_url=f"mqtt://127.0.0.1:{MQTT_PORT}"))
    sub = Subscriber(MQTT_PORT, ["e2e/#"])
    try:
        stack.start("mqtt")  # ready: connected, porch subscribed
        assert (stack.state_dir / "mqtt" / "keys" / "porch.pub").is_file()
        opened = site.camera.upload("porch", "cam1", photos["obama3.jpg"], badge="mqtt_guest")
        denied = site.camera.upload("porch", "cam1", photos["biden.jpg"], badge="mqtt_guest")
        deadline = time.monotonic() + 60.0
        while len(sub.on("e2e/porch/event")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        events = {d["upload_id"]: d for d in sub.on("e2e/porch/event")}
        assert set(events) == {opened, denied}, stack.tail("mqtt")
        assert (events[opened]["decision"], events[opened]["person"]) == ("OPEN", "mqtt_guest")
        assert events[denied]["decision"] == "DENY"
        assert events[denied]["reason"] == "below_threshold"
        (last,) = sub.on("e2e/porch/last_person")
        assert last["person"] == "mqtt_guest"
        assert {"raw": "online"} in sub.on("e2e/bridge/availability")
    finally:
        sub.close()
        stack.stop("mqtt")
        # the other e2e tests' identify doors must not find this person
        site.admin.revoke("mqtt_guest")
        site.store.delete_door("porch")
