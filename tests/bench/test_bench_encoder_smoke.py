"""bench/encoder_chips.py --smoke runs end to end and writes a complete JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# bench: a benchmark smoke; model: builds the real encoder in TensorFlow;
# oracle: measures it against dlib-bin; slow: as it was marked before the move.
pytestmark = [pytest.mark.bench, pytest.mark.model, pytest.mark.oracle, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_encoder_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "encoder_chips.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "encoder_chips.py"), "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ratio" in proc.stdout and "GFLOP/s" in proc.stdout
    result = json.loads(out.read_text())

    machine = result["machine"]
    assert machine["peak_gflops"] > 0 and machine["cores"] >= 1
    assert "FLOP/cycle" in machine["peak_formula"]
    tf_facts = result["tensorflow"]
    assert {"intra_op_threads", "inter_op_threads", "devices"} <= set(tf_facts)

    chips = result["chips"]
    assert chips["real_chips"] >= 3
    assert 0 <= chips["max_abs_diff_vs_dlib"] <= 1e-5
    rows = chips["rows"]
    assert [r["batch"] for r in rows] == [1, 8]
    for row in rows:
        for key in (
            "ours_faces_per_s", "dlib_faces_per_s", "ratio", "ours_gflops",
            "ours_fraction_of_peak", "ours_ms_per_face", "dlib_ms_per_face",
        ):
            assert row[key] > 0, (key, row)
        assert row["ratio"] == pytest.approx(row["ours_faces_per_s"] / row["dlib_faces_per_s"])

    pipeline = result["pipeline"]
    assert "skipped" not in pipeline, pipeline
    assert pipeline["images"] == 3
    for key in ("ours_images_per_s", "face_recognition_images_per_s", "ratio",
                "interleaved_ratio", "interleaved_same_work_ratio"):
        assert pipeline[key] > 0, (key, pipeline)
    # less work per face (no averaging) is faster than the full engine
    assert (pipeline["interleaved_same_work_images_per_s"]
            > pipeline["interleaved_ours_images_per_s"])
    # the sample portraits each show one face, and both pipelines find them
    assert pipeline["ours_faces"] >= 3 and pipeline["face_recognition_faces"] >= 3
    assert [r["image_batch"] for r in pipeline["rows"]] == [1, 3]
    for row in pipeline["rows"]:
        assert row["images_per_s"] > 0 and row["faces"] >= 3

    accuracy = result["accuracy"]
    if "skipped" not in accuracy:  # LFW View 1 is beside the checkout
        assert accuracy["train_pairs"] == accuracy["test_pairs"] == 6
        for side in ("ours", "face_recognition"):
            assert 0.0 <= accuracy[side]["test_accuracy"] <= 1.0
            assert 0.0 < accuracy[side]["threshold"] < 2.0
    assert out.with_suffix(".png").is_file()
