"""``bench/lock_events.py --smoke`` runs and writes sane JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# bench: a benchmark smoke; unit: no services, no TensorFlow, a second or so.
pytestmark = [pytest.mark.bench, pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]


def test_lock_events_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "lock.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lock_events.py"), "--smoke", "--out", str(out),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    r = doc["results"]
    assert doc["benchmark"] == "lock_events" and doc["smoke"] is True
    assert r["sign_us"]["n"] == r["verify_us"]["n"] == r["accept_ms"]["n"] == 50
    assert 0 < r["sign_us"]["median"] <= r["sign_us"]["p95"]
    assert 0 < r["accept_ms"]["median"] <= r["accept_ms"]["p95"]
    assert r["catch_up_rejected_expired"] == r["catch_up_entries"] == 200
    # the state file holds the 50 accepted ids, nothing more
    state = json.loads((tmp_path / "state" / "front.json").read_text())
    assert len(state["accepted"]) == 50 and r["state_file_bytes_after"] > 50 * 32
