"""facegate.core.evaluation: pair files, thresholds, folds, TAR@FAR on
hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facegate.core.errors import ConfigError
from facegate.core.evaluation import (
    accuracy,
    best_threshold,
    cross_validate,
    image_path,
    missing_images,
    read_pairs,
    roc,
    stratified_folds,
    tar_at_far,
    threshold_at_far,
    train_test,
)

pytestmark = pytest.mark.unit

INF = math.inf


def write(tmp_path: Path, text: str, name: str = "pairs.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- parsing


def test_dev_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2\nAnn_A\t1\t2\nBob_B\t3\t12\nAnn_A\t1\tBob_B\t4\nCid_C\t2\tAnn_A\t3\n",
        "pairsDevTest.txt",
    )
    ps = read_pairs(path, tmp_path / "images")
    assert len(ps) == 4 and ps.folds == 1
    assert ps.same.tolist() == [True, True, False, False]
    assert ps.fold.tolist() == [0, 0, 0, 0]
    first, last = ps.pairs[0], ps.pairs[3]
    assert first.left == tmp_path / "images" / "Ann_A" / "Ann_A_0001.jpg"
    assert first.right == tmp_path / "images" / "Ann_A" / "Ann_A_0002.jpg"
    assert ps.pairs[1].right.name == "Bob_B_0012.jpg"
    assert last.left.name == "Cid_C_0002.jpg" and last.right.name == "Ann_A_0003.jpg"
    assert (first.line, last.line) == (2, 5)
    assert len(ps.images()) == 7


def test_ten_fold_layout_with_spaces(tmp_path: Path) -> None:
    lines = ["3 2"]
    for f in range(3):
        lines += [f"S{f} 1 2", f"S{f} 3 4", f"D{f} 1 E{f} 1", f"D{f} 2 E{f} 2"]
    ps = read_pairs(write(tmp_path, "\n".join(lines) + "\n"), tmp_path)
    assert ps.folds == 3 and len(ps) == 12
    assert ps.fold.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ps.same.tolist() == [True, True, False, False] * 3
    assert ps.pairs[4].left.name == "S1_0001.jpg"
    assert ps.pairs[11].right.name == "E2_0002.jpg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty pairs file"),
        ("1\nA 1 2\n", "promises 2 pairs .* found 1 lines"),
        ("1\nA 1 2\nA 1 B 2\nC 1 2\n", "found 3 lines"),
        ("1\nA 1 B 2\nA 1 B 2\n", r"pairs.txt:2: expected a matched pair"),
        ("1\nA 1 2\nA 1 2\n", r"pairs.txt:3: expected a mismatched pair"),
        ("1\nA 1 x\nA 1 B 2\n", r"pairs.txt:2: 'x' is not a whole number"),
        ("1\nA 0 2\nA 1 B 2\n", r"pairs.txt:2: 0 must be at least 1"),
        ("ten\n", r"pairs.txt:1: 'ten' is not a whole number"),
        ("1 2 3\n", r"pairs.txt:1: expected a header"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        read_pairs(path, tmp_path)
    assert str(path) in str(info.value)


def test_missing_file_and_missing_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such pairs file"):
        read_pairs(tmp_path / "nope.txt", tmp_path)
    ps = read_pairs(write(tmp_path, "1\nA 1 2\nA 1 B 1\n"), tmp_path)
    for name, i in [("A", 1), ("A", 2)]:
        image_path(tmp_path, name, i).parent.mkdir(exist_ok=True)
        image_path(tmp_path, name, i).write_bytes(b"x")
    missing = missing_images(ps.pairs)
    assert [(p.line, path.name) for p, path in missing] == [(3, "B_0001.jpg")]


# --------------------------------------------------------------------------- thresholds


def test_best_threshold_hand_case() -> None:
    # sorted: 0.1 S, 0.2 S, 0.3 D, 0.4 S, 0.5 D, 0.6 D
    d = [0.4, 0.1, 0.6, 0.2, 0.5, 0.3]
    s = [True, True, False, True, False, False]
    t, acc = best_threshold(d, s)
    # cut after 0.2 -> 5/6 (0.4 S wrong); cut after 0.4 -> 5/6 (0.3 D wrong);
    # the smallest of the tied thresholds wins.
    assert t == pytest.approx(0.25)
    assert acc == pytest.approx(5 / 6)
    assert accuracy(d, s, t) == pytest.approx(acc)
    assert accuracy(d, s, 0.45) == pytest.approx(5 / 6)
    assert accuracy(d, s, 0.35) == pytest.approx(4 / 6)


def test_best_threshold_separable_and_ends() -> None:
    t, acc = best_threshold([0.2, 0.3, 0.9, 1.0], [True, True, False, False])
    assert (t, acc) == pytest.approx((0.6, 1.0))
    t, acc = best_threshold([0.5, 0.7], [False, False])  # accept nothing
    assert t <= 0.5 and acc == 1.0
    t, acc = best_threshold([0.5, 0.7], [True, True])  # accept everything
    assert t > 0.7 and acc == 1.0


def test_best_threshold_never_cuts_between_equal_distances() -> None:
    t, acc = best_threshold([0.5, 0.5, 0.5, 0.9], [True, False, True, False])
    assert t == pytest.approx(0.7)
    assert acc == pytest.approx(3 / 4)


def test_no_face_pairs_count_as_wrong() -> None:
    d = [0.2, INF, 0.9, INF]
    s = [True, True, False, False]
    # inf "same" pair: a false reject; inf "different" pair: counted wrong too.
    assert accuracy(d, s, 0.5) == pytest.approx(0.5)
    t, acc = best_threshold(d, s)
    assert 0.2 < t < 0.9 and acc == pytest.approx(0.5)
    curve = roc(d, s)
    assert curve.tar.max() == pytest.approx(0.5)  # the inf matched pair is never accepted
    assert curve.far.max() == pytest.approx(0.5)  # nor is the inf mismatched one


@pytest.mark.parametrize(
    ("distances", "labels"),
    [
        ([0.1, np.nan], [True, False]),
        ([0.1, -0.2], [True, False]),
        ([0.1, 0.2], [True]),
        ([], []),
        ([0.1, 0.2], [1, 0]),
    ],
)
def test_metrics_reject_bad_input(distances: list[float], labels: list[bool] | list[int]) -> None:
    with pytest.raises(ValueError):
        accuracy(distances, labels, 0.5)


# --------------------------------------------------------------------------- protocols


def test_cross_validate_hand_case() -> None:
    # fold 0 is noisy, folds 1 and 2 separate at 0.5
    d = np.array([0.3, 0.8, 0.7, 0.2, 0.4, 0.6, 0.1, 0.45, 0.9, 0.55])
    s = np.array([True, True, False, False, True, False, True, True, False, False])
    f = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    res = cross_validate(d, s, f)
    assert len(res.accuracies) == 3
    for k in range(3):
        t, _ = best_threshold(d[f != k], s[f != k])
        assert res.thresholds[k] == pytest.approx(t)
        assert res.accuracies[k] == pytest.approx(accuracy(d[f == k], s[f == k], t))
    assert res.thresholds[1] == pytest.approx(0.5)
    assert res.accuracies[1] == 1.0
    assert res.accuracies[0] == pytest.approx(0.5)
    assert res.mean == pytest.approx(np.mean(res.accuracies))
    assert res.std == pytest.approx(np.std(res.accuracies, ddof=1))
    with pytest.raises(ValueError, match="two folds"):
        cross_validate(d, s, np.zeros(10, dtype=int))


def test_stratified_folds_deal_each_label_evenly() -> None:
    s = np.array([True] * 20 + [False] * 20)
    f = stratified_folds(s, 10)
    for k in range(10):
        assert s[f == k].sum() == 2 and (~s[f == k]).sum() == 2


def test_train_test_uses_the_training_threshold() -> None:
    train_d, train_s = [0.1, 0.2, 0.8, 0.9], [True, True, False, False]
    test_d = [0.3, 0.6, 0.7, 0.4]
    test_s = [True, True, False, False]
    threshold, folds = train_test(train_d, train_s, test_d, test_s, subsets=2)
    assert threshold == pytest.approx(0.5)
    assert np.mean(folds.accuracies) == pytest.approx(accuracy(test_d, test_s, 0.5))
    assert accuracy(test_d, test_s, 0.5) == pytest.approx(0.5)
    assert folds.accuracies == (1.0, 0.0)  # subsets {0.3 S, 0.7 D} and {0.6 S, 0.4 D}


# --------------------------------------------------------------------------- ROC and FAR


def test_threshold_and_tar_at_far_hand_case() -> None:
    impostors = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95]
    genuine = [0.30, 0.52, 0.58, 0.62, 0.99]
    d = genuine + impostors
    s = [True] * 5 + [False] * 10
    # FAR 0: accept strictly under the smallest impostor distance
    assert threshold_at_far(d, s, 0.0) == 0.50
    assert tar_at_far(d, s, 0.0) == pytest.approx((1 / 5, 0.50))
    # FAR 0.2 allows 2 false accepts of 10: threshold = 3rd impostor
    assert threshold_at_far(d, s, 0.2) == 0.60
    tar, t = tar_at_far(d, s, 0.2)
    assert (tar, t) == pytest.approx((3 / 5, 0.60))
    # FAR 0.15 rounds down to 1 allowed false accept
    assert threshold_at_far(d, s, 0.15) == 0.55
    # FAR 1: everything finite accepted
    assert threshold_at_far(d, s, 1.0) > 0.99
    assert tar_at_far(d, s, 1.0)[0] == 1.0
    with pytest.raises(ValueError, match="far"):
        threshold_at_far(d, s, 1.5)


def test_threshold_at_far_is_the_largest_allowed() -> None:
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.uniform(0.2, 0.7, 300), rng.uniform(0.5, 1.2, 1000)])
    s = np.array([True] * 300 + [False] * 1000)
    for far in (0.0, 1e-3, 0.01, 0.1):
        t = threshold_at_far(d, s, far)
        fa = (d[~s] < t).mean()
        assert fa <= far
        above = np.nextafter(t, np.inf)
        assert (d[~s] < above).mean() > far  # any larger threshold breaks the target


def test_roc_hand_case() -> None:
    d = [0.1, 0.3, 0.2, 0.4]
    s = [True, True, False, False]
    curve = roc(d, s)
    np.testing.assert_allclose(curve.tar, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(curve.far, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(curve.frr, 1 - curve.tar)
    assert curve.thresholds[0] == 0.0
    assert curve.thresholds[1] > 0.1 and curve.thresholds[1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="both"):
        roc([0.1, 0.2], [True, True])
