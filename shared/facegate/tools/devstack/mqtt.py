"""The local stack's MQTT bridge (``services.mqtt``), started by
``facegate stack up`` when ``FACEGATE_MQTT_URL`` is set.

The bridge gets only the ``FACEGATE_MQTT_*`` variables of the shell (never
the stack's secrets: it needs none), reads the stack's Redis, and keeps its
files under ``<state>/mqtt/``: ``keys/<door>.pub`` (each door's public
keys, written here from the stack's signing secret: the current and the
previous version, for a rotation) and ``state/`` (its cursors). The keys
are written again at every ``facegate stack up``, so after adding a door
run ``facegate stack up`` once more (the running processes are left alone;
the bridge reads the folder again within ``FACEGATE_MQTT_RESCAN_S``).
Ready when its ``/healthz`` answers 200 (connected to the broker).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from facegate.tools.devstack.config import ROOT
from facegate.tools.devstack.processes import _http_ok
from facegate.tools.devstack.specs import _Spec, log

if TYPE_CHECKING:
    from facegate.tools.devstack.stack import Stack

DEFAULT_HEALTH_PORT = 18790


def write_door_keys(stack: Stack) -> list[str]:
    """``<state>/mqtt/keys/<door>.pub`` for every door in the stack's Redis."""
    from facegate.adapters.redis_store import RedisStore
    from facegate.core.errors import FacegateError
    from facegate.core.signing import DoorSigner

    folder = stack.state_dir / "mqtt" / "keys"
    secret = stack.secrets()["FACEGATE_SIGNING_SECRET"]
    store = RedisStore.from_url(stack.config.redis_url)
    try:
        doors = store.list_doors()
        for door in doors:
            version = store.door_key_version(door)
            versions = [v for v in (version, version - 1) if v >= 1]
            public = [DoorSigner.derive(secret, door, v).public_key.hex for v in versions]
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{door}.pub.tmp"  # the format of services.mqtt.state
            tmp.write_text("".join(f"{h}\n" for h in public))
            tmp.replace(folder / f"{door}.pub")
    except FacegateError as exc:
        log.warning("MQTT bridge: door keys not written (%s)", exc)
        return []
    finally:
        store.close()
    return doors


def bridge_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("FACEGATE_MQTT_")})
    if stack.config.mqtt_url:
        env["FACEGATE_MQTT_URL"] = stack.config.mqtt_url
    env.setdefault("FACEGATE_MQTT_REDIS_URL", stack.config.redis_url)
    env.setdefault("FACEGATE_MQTT_KEYS_DIR", str(stack.state_dir / "mqtt" / "keys"))
    env.setdefault("FACEGATE_MQTT_STATE_DIR", str(stack.state_dir / "mqtt" / "state"))
    env.setdefault("FACEGATE_MQTT_HEALTH_PORT", str(DEFAULT_HEALTH_PORT))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def health_url(stack: Stack) -> str:
    port = bridge_env(stack)["FACEGATE_MQTT_HEALTH_PORT"]
    return f"http://127.0.0.1:{port}/healthz"


def bridge_spec(stack: Stack) -> _Spec:
    """The bridge's process (writes the door keys first)."""
    doors = write_door_keys(stack)
    log.info("MQTT bridge: keys of %d door(s) in %s", len(doors), stack.state_dir / "mqtt")
    url = health_url(stack)
    return _Spec("mqtt", [sys.executable, "-m", "services.mqtt"], ROOT, "services.mqtt",
                 lambda: _http_ok(url), env=bridge_env(stack))


__all__ = ["DEFAULT_HEALTH_PORT", "bridge_env", "bridge_spec", "health_url", "write_door_keys"]
