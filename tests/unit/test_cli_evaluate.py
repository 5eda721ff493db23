"""``facegate evaluate`` / ``calibrate``: argument checks and error messages
(all before any model loads), and the whole command on a fake engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from facegate.core.evaluation import read_pairs
from facegate.engine.types import Box, Face, Image
from facegate.tools import cli_evaluate
from facegate.tools.cli import main

pytestmark = pytest.mark.unit

PEOPLE = ["Ann_A", "Bob_B", "Cid_C", "Dan_D"]


class FakeEngine:
    """Encodes the person from the red channel (one-hot) and the image
    number from green (a small offset); a blue image has no face."""

    model_id = "fake-engine"

    def encode_images(self, images: Sequence[Image]) -> list[list[Face]]:
        out: list[list[Face]] = []
        for image in images:
            r, g, b = (int(v) for v in image[0, 0])
            if b > 128:
                out.append([])
                continue
            enc = np.zeros(8, dtype=np.float32)
            enc[r // 40] = 1.0
            enc[7] = g / 1000.0
            h, w = image.shape[:2]
            box = Box(2.0, 2.0, w - 2.0, h - 2.0, 0.99)
            out.append([Face(box, np.zeros((5, 2), np.float32), float(w - 4), enc)])
        return out


def make_images(root: Path, *, blue: tuple[str, int] | None = None) -> Path:
    images = root / "images"
    for k, name in enumerate(PEOPLE):
        (images / name).mkdir(parents=True)
        for i in range(1, 5):
            colour = (k * 40, i * 20, 255 if blue == (name, i) else 0)
            PILImage.new("RGB", (24, 24), colour).save(
                images / name / f"{name}_{i:04d}.jpg", format="PNG"
            )
    return images


def pairs_file(path: Path) -> Path:
    same = [f"{name}\t{i}\t{i + 1}" for name in PEOPLE for i in (1, 3)]
    rotated = PEOPLE[1:] + PEOPLE[:1]
    diff = [f"{a}\t{i}\t{b}\t{i}" for i in (1, 2) for a, b in zip(PEOPLE, rotated, strict=True)]
    path.write_text("\n".join([str(len(same)), *same, *diff]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("the model must not be loaded before the arguments are checked")

    monkeypatch.setattr(cli_evaluate, "_engine", refuse)


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_evaluate, "_engine", FakeEngine)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("facegate: error: ")
    return err


# --------------------------------------------------------------------------- errors


@pytest.mark.usefixtures("no_model")
def test_missing_pairs_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_images(tmp_path)
    assert main(["evaluate", "--pairs", str(tmp_path / "no.txt"), "--images", str(images)]) == 1
    assert f"{tmp_path / 'no.txt'}: no such pairs file" in one_error_line(capsys)


@pytest.mark.usefixtures("no_model")
def test_malformed_line_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_images(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\n", encoding="utf-8")
    assert main(["evaluate", "--pairs", str(bad), "--images", str(images)]) == 1
    assert f"{bad}:3: expected a mismatched pair" in one_error_line(capsys)


@pytest.mark.usefixtures("no_model")
def test_malformed_train_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_images(tmp_path)
    good = pairs_file(tmp_path / "test.txt")
    train = tmp_path / "train.txt"
    train.write_text("2\nAnn_A\t1\t2\n", encoding="utf-8")
    argv = ["evaluate", "--pairs", str(good), "--images", str(images), "--train", str(train)]
    assert main(argv) == 1
    assert f"{train}: the header promises 4 pairs" in one_error_line(capsys)


@pytest.mark.usefixtures("no_model")
def test_missing_image_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_images(tmp_path)
    path = pairs_file(tmp_path / "pairs.txt")
    (images / "Cid_C" / "Cid_C_0004.jpg").unlink()
    assert main(["evaluate", "--pairs", str(path), "--images", str(images)]) == 1
    err = one_error_line(capsys)
    assert f"{path}:7: image {images / 'Cid_C' / 'Cid_C_0004.jpg'} not found" in err


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch", "0"], "--batch must be at least 1"),
        (["--json", "/nonexistent-dir/report.json"], "the folder for the JSON report"),
        (["--plot", "/nonexistent-dir/roc.png"], "the folder for the plot"),
    ],
)
def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    images = make_images(tmp_path)
    path = pairs_file(tmp_path / "pairs.txt")
    assert main(["evaluate", "--pairs", str(path), "--images", str(images), *extra]) == 1
    assert message in one_error_line(capsys)


@pytest.mark.usefixtures("no_model")
def test_images_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = pairs_file(tmp_path / "pairs.txt")
    assert main(["evaluate", "--pairs", str(path), "--images", str(tmp_path / "none")]) == 1
    assert f"{tmp_path / 'none'}: not a folder" in one_error_line(capsys)


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("far", ["0", "1", "-0.1", "2"])
def test_calibrate_far_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str], far: str) -> None:
    images = make_images(tmp_path)
    path = pairs_file(tmp_path / "pairs.txt")
    argv = ["calibrate", "--pairs", str(path), "--images", str(images), "--far", far]
    assert main(argv) == 1
    assert "--far must be between 0 and 1" in one_error_line(capsys)


@pytest.mark.usefixtures("no_model")
def test_required_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--images", "x"]) == 1
    assert "--pairs" in one_error_line(capsys)


# --------------------------------------------------------------------------- whole command


@pytest.mark.usefixtures("fake_engine")
def test_evaluate_train_test_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_images(tmp_path, blue=("Dan_D", 3))
    test = pairs_file(tmp_path / "test.txt")
    train = pairs_file(tmp_path / "train.txt")
    report, plot = tmp_path / "report.json", tmp_path / "roc.png"
    argv = ["evaluate", "--pairs", str(test), "--images", str(images), "--train", str(train)]
    assert main([*argv, "--json", str(report), "--plot", str(plot), "--batch", "3"]) == 0
    doc = json.loads(report.read_text(encoding="utf-8"))
    # Dan_D_0003 has no face: the matched pair (Dan_D 3 4) is wrong; 15/16 right.
    assert doc["protocol"] == "train/test"
    assert doc["pairs"] == 16 and doc["train_pairs"] == 16
    assert doc["no_face_images"] == 1 and doc["no_face"][0].endswith("Dan_D_0003.jpg")
    assert doc["failed_pairs"] == 1
    assert doc["accuracy"] == pytest.approx(15 / 16)
    assert 0.03 < doc["threshold"] < 1.4
    assert doc["tar_at_far_1e-3"] == pytest.approx(7 / 8)
    assert doc["model_id"] == "fake-engine"
    assert doc["images"] == 16
    assert isinstance(doc["accuracy_std"], float) and isinstance(doc["seconds"], float)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "accuracy: 93.75%" in out and "images without a face: 1" in out


@pytest.mark.usefixtures("fake_engine")
def test_evaluate_cross_validation_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_images(tmp_path)
    path = pairs_file(tmp_path / "pairs.txt")
    assert main(["evaluate", "--pairs", str(path), "--images", str(images), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["protocol"].startswith("8-fold")  # 8 matched pairs: 8 non-empty folds
    assert doc["accuracy"] == 1.0 and doc["accuracy_std"] == 0.0
    assert len(doc["fold_thresholds"]) == 8
    assert doc["no_face_images"] == 0


@pytest.mark.usefixtures("fake_engine")
def test_calibrate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_images(tmp_path)
    path = pairs_file(tmp_path / "pairs.txt")
    argv = ["calibrate", "--pairs", str(path), "--images", str(images), "--far", "0.01"]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # impostor distances are all about sqrt(2): the threshold is the smallest of them
    assert doc["threshold"] == pytest.approx(np.sqrt(2), abs=0.01)
    assert doc["tar"] == 1.0 and doc["false_accepts"] == 0
    assert doc["mismatched_pairs"] == 8 and doc["far_resolution"] == pytest.approx(1 / 8)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "TAR 100.00%" in captured.out
    assert "resolve FAR only to" in captured.err


def test_report_uses_the_files_own_folds(tmp_path: Path) -> None:
    lines = ["2 2", "A 1 2", "B 1 2", "A 1 B 1", "A 2 B 2"]
    lines += ["C 1 2", "D 1 2", "C 1 D 1", "C 2 D 2"]
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pairs = read_pairs(path, tmp_path)
    # fold 0 separates at 0.5, fold 1 at 0.25: each judged at the other's threshold
    d = np.array([0.1, 0.4, 0.6, 0.9, 0.1, 0.2, 0.3, 0.9])
    doc = cli_evaluate.evaluation_report(pairs, d)
    assert doc["protocol"] == "2-fold"
    assert doc["fold_thresholds"] == pytest.approx([0.25, 0.5])
    assert doc["fold_accuracies"] == pytest.approx([0.75, 0.75])
    assert doc["accuracy"] == pytest.approx(0.75)
    assert doc["pairs"] == 8 and doc["mismatched_pairs"] == 4


@pytest.mark.usefixtures("fake_engine")
def test_evaluate_open_set_by_hand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 people x 4 photos (one without a face): each person a corner of the
    cube, photos 0.02 apart along one axis; impostors about 1.414 apart."""
    monkeypatch.setenv("FACEGATE_CACHE_DIR", str(tmp_path / "cache"))
    images = make_images(tmp_path, blue=("Dan_D", 2))
    out = tmp_path / "open.json"
    argv = ["evaluate", "--open-set", "--images", str(images), "--gallery-sizes", "2,10",
            "--draws", "2", "--json", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    v = doc["verification"]
    # 16 photos: 120 pairs, 4 x 6 = 24 genuine (3 of Dan's with the faceless photo)
    assert (v["genuine_pairs"], v["impostor_pairs"]) == (24, 96)
    assert v["tar_at_far_1e-3"] == pytest.approx(21 / 24)  # the faceless pairs never accept
    assert v["meaningful_1e-3"] is False  # 96 impostor pairs cannot resolve 1e-3
    assert doc["images_without_face"] == 1 and doc["people_with_2_or_more"] == 4
    (row,) = doc["identification"]
    assert (row["gallery_size"], row["draws"]) == (2, 2)
    # 6 mated probes per draw; the faceless one, when Dan is enrolled, is never right
    assert row["rank1"] in (1.0, pytest.approx(11 / 12), pytest.approx(5 / 6))
    assert row["non_mated_probes_per_draw"] == 8 and row["fpir_at_threshold"] == 0.0
    assert doc["skipped_gallery_sizes"][0]["gallery_size"] == 10
    assert "TAR at FAR 0.001" in capsys.readouterr().out
    # a second run reads the cached encodings (the engine is not asked again)
    monkeypatch.setattr(FakeEngine, "encode_images", None)
    assert main(argv) == 0


@pytest.mark.usefixtures("no_model")
def test_calibrate_a_door_from_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from facegate.core.calibration import identify_threshold, per_comparison_rate

    argv = ["calibrate", "--people", "100", "--templates", "2", "--frames", "3", "--far", "1e-3"]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "table" and doc["comparisons_per_approach"] == 600
    assert doc["threshold"] == pytest.approx(identify_threshold(2, people=100, frames=3))
    assert doc["far_per_pair"] == pytest.approx(per_comparison_rate(1e-3, 600))
    assert doc["stranger_acceptance"] == pytest.approx(1e-3)
    assert main(argv) == 0
    assert "600 comparisons" in capsys.readouterr().out


@pytest.mark.usefixtures("fake_engine")
def test_calibrate_pairs_per_approach(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_images(tmp_path)
    path = pairs_file(tmp_path / "pairs.txt")
    argv = ["calibrate", "--pairs", str(path), "--images", str(images), "--far", "0.19",
            "--frames", "2", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["comparisons_per_approach"] == 2 and doc["far_per_approach"] == 0.19
    assert doc["far_target"] == pytest.approx(0.1)  # 1 - 0.81 ** 0.5
