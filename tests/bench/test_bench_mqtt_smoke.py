"""``bench/mqtt_bridge.py --smoke`` runs (its own Redis, Mosquitto and bridge
on ``FACEGATE_BENCH_SMOKE_BASE_PORT`` + 50..52) and reports every event
delivered once, with sane figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facegate.tools.devstack import StackError, find_redis_server
from facegate.tools.settings import ToolSettings

pytestmark = [pytest.mark.bench, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = ToolSettings.from_env().bench_smoke_base_port + 50


def test_mqtt_bridge_bench_smoke(tmp_path: Path) -> None:
    missing = None
    try:
        find_redis_server()
    except StackError as exc:
        missing = str(exc)
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        missing = "mosquitto (Debian package)"
    if missing:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"the MQTT benchmark needs {missing} (CI=true)")
        pytest.skip(f"the MQTT benchmark needs {missing}")
    out = tmp_path / "mqtt.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_MQTT_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "mqtt_bridge.py"), "--smoke", "--out", str(out),
         "--base-port", str(BASE_PORT)],
        capture_output=True, text=True, timeout=240, check=False, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    r = doc["results"]
    assert doc["benchmark"] == "mqtt_bridge" and doc["smoke"] is True
    assert (r["events"], r["backlog"], r["lost"], r["duplicated"]) == (20, 50, 0, 0)
    assert 0 < r["latency_ms"]["median"] <= r["latency_ms"]["p95"] <= r["latency_ms"]["max"]
    assert r["backlog_per_s"] > 0 and r["backlog_drain_s"] > 0
