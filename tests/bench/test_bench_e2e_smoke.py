"""``bench/e2e_load.py --smoke`` runs on a real stack of its own and reports
every decision verified, none lost, none duplicated, none wrong.

The benchmark starts its own Redis, SeaweedFS, ingest, encoder and matcher
on ``FACEGATE_BENCH_SMOKE_BASE_PORT`` (default 27410..27416: neither the
tests' 26300-26406 nor the demo's or the development stack's ports).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facegate.tools.devstack import StackError, find_redis_server, find_weed
from facegate.tools.settings import ToolSettings

pytestmark = [pytest.mark.bench, pytest.mark.e2e, pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = str(ToolSettings.from_env().bench_smoke_base_port)
STAGES = (
    "put_notify", "ingest", "queue_wait", "fetch", "decode", "engine_wait", "detect", "embed",
    "to_matcher", "match", "publish",
)


def test_e2e_load_smoke(tmp_path: Path) -> None:
    for finder in (find_redis_server, find_weed):
        try:
            finder()
        except StackError as exc:
            if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
                pytest.fail(f"the e2e benchmark needs {exc} (CI=true)")
            pytest.skip(f"the e2e benchmark needs {exc}")
    out = tmp_path / "e2e_load.json"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "e2e_load.py"), "--smoke",
            "--base-port", BASE_PORT, "--state-dir", str(tmp_path / "state"), "--out", str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "where the time goes" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "e2e_load" and doc["mode"] == "smoke"
    assert {"cpu_model", "usable_cpus", "memory_gib", "load_average"} <= set(doc["machine"])
    assert doc["lost"] == doc["duplicated"] == doc["unexpected_decisions"] == 0
    (run,) = doc["runs"]
    assert "error" not in run, run.get("error")
    (step,) = run["steps"]
    assert step["uploads_sent"] == step["uploads_planned"] > 0
    assert step["decisions"] == step["uploads_sent"]
    assert step["lost"] == step["duplicated"] == step["upload_errors"] == 0
    assert step["rejected_by_locks"] == {}
    # every kind of picture was sent and decided as expected
    assert set(step["mix"]) == {"known", "unknown", "noface"}
    assert step["unexpected_decisions"] == 0
    latency = step["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert step["throughput"] > 0
    assert set(step["stages_ms"]) == set(STAGES)
    for name in STAGES:
        assert step["stages_ms"][name]["p50"] is not None, name
    # the stages are consecutive: their means add up to the mean latency
    total = sum(step["stages_ms"][name]["mean"] for name in STAGES)
    assert total == pytest.approx(latency["mean"], rel=1e-6)
