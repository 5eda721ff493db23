"""``bench/image_memory.py --decode`` runs and shows the bomb refused for free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# bench: a benchmark smoke; unit: Pillow and numpy in subprocesses (no
# services, no model files, no TensorFlow), a few seconds.
pytestmark = [pytest.mark.bench, pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]


def test_image_memory_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "image_memory.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "image_memory.py"), "--decode",
         "--cases", "bomb-6000x6000.png,photo-1920x1080.jpg", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "load average" in proc.stdout
    rows = {r["case"]: r for r in json.loads(out.read_text())["decode"]}
    bomb, photo = rows["bomb-6000x6000.png"], rows["photo-1920x1080.jpg"]
    assert 110_000 < bomb["bytes"] < 125_000
    assert bomb["outcome"].startswith("ImageError") and bomb["peak_growth_mib"] < 20
    assert photo["outcome"] == "decoded 1920x1080"
