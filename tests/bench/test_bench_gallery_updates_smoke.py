"""``bench/identify.py --updates --smoke``: the gallery-update benchmark
runs end to end on a Redis of its own and writes sane JSON (tiny sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facegate.tools.devstack import StackError, find_redis_server
from facegate.tools.settings import ToolSettings

pytestmark = [pytest.mark.bench, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
PORT = str(ToolSettings.from_env().bench_smoke_base_port + 20)  # e2e smoke: base .. base+6


def test_gallery_updates_bench_smoke(tmp_path: Path) -> None:
    try:
        find_redis_server()
    except StackError as exc:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"the benchmark needs {exc} (CI=true)")
        pytest.skip(f"the benchmark needs {exc}")
    out = tmp_path / "updates.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "identify.py"), "--updates", "--smoke",
         "--redis-port", PORT, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reload s" in proc.stdout and str(out) in proc.stdout
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["benchmark"] == "gallery_updates" and doc["smoke"] is True
    rows = doc["results"]
    assert [r["templates"] for r in rows] == [300, 3000]
    for r in rows:
        assert r["wrong"] == 0 and r["reloads_after_start"] == 0
        assert r["applied_changes"] >= 20  # 10 enrolments, 10 revocations at least
        assert all(s > 0 for s in r["reload_s"])
        for part in ("apply_enrolment", "apply_revocation", "decision_quiet"):
            assert 0 < r[part]["p50_ms"] <= r[part]["p99_ms"] <= r[part]["max_ms"]
        assert r["decision_while_changing"]["n"] >= 20 and r["changes_during_decisions"] > 0
        assert 0 < r["put_in_memory"]["p50_ms"] <= r["put_in_memory"]["max_ms"]
