"""``bench/identify.py --smoke`` runs end to end and writes sane JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# bench: a benchmark smoke; unit: numpy only in a subprocess of a second or so
# (no services, no model files, no TensorFlow), so `make test-fast` keeps it fresh.
pytestmark = [pytest.mark.bench, pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]


def test_identify_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "identify.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "identify.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "templates" in proc.stdout and str(out) in proc.stdout
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["benchmark"] == "identify" and doc["smoke"] is True
    rows = doc["results"]
    assert [r["templates"] for r in rows] == [300, 3000]
    for r in rows:
        assert r["people"] == r["templates"] // 3
        assert r["reference_mismatches"] == 0 and r["checked_probes"] > 0
        assert r["reference_max_abs_diff"] < 1e-6
        # half of the checked probes are noisy copies of enrolled templates
        assert r["enrolled_probes_matched"] == r["enrolled_probes_checked"] > 0
        assert 0 < r["single_ms_median"] <= r["single_ms_p95"]
        assert r["batch_ms_median"] > 0 and r["batch_per_probe_ms"] > 0
        assert r["gallery_mb"] > 0 and r["batch_peak_extra_mb"] >= 0
