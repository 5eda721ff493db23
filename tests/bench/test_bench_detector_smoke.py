"""bench/detector_sizes.py --smoke runs end to end and writes a complete JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# bench: a benchmark smoke; model: builds the real detector and engine in TensorFlow.
pytestmark = [pytest.mark.bench, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]


def test_detector_sizes_smoke(tmp_path: Path) -> None:
    out = tmp_path / "detector_sizes.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "detector_sizes.py"), "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["machine"]["load_average"] is not None
    (row,) = doc["rows"]
    assert (row["min_face_size"], row["max_side"]) == ("80", 640)
    for key in ("detect_ms_snapshot_b1", "detect_ms_snapshot_batch", "engine_ms_snapshot_b1",
                "engine_ms_snapshot_batch"):
        assert row[key] > 0, key
    # the two residents and the unknown face have one face each, the landscape none
    assert row["snapshot_faces"] == [1, 1, 1, 0]
    assert "view1" not in row  # --smoke measures no accuracy
