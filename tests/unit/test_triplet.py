"""The triplet loss's numpy reference, triplet mining, splits, metrics and
the saved head's format checks: numpy only. The TensorFlow loss, the
seeds' figures and fine-tuning are in ``tests/model/test_triplet_tf.py``."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from facegate.core.errors import ConfigError, ModelFormatError
from facegate.training.finetune import FinetuneConfig, TripletHead
from facegate.training.triplet import (
    Triplets,
    batch_hard_triplets,
    best_threshold,
    holdout_split,
    pairwise_squared_distances,
    sample_pk_batch,
    semi_hard_triplets,
    verification_metrics,
)

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------------------
# Mining


def test_pairwise_squared_distances_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    e = rng.normal(size=(9, 5))
    d = pairwise_squared_distances(e)
    for i, j in itertools.product(range(9), range(9)):
        assert d[i, j] == pytest.approx(np.sum((e[i] - e[j]) ** 2), abs=1e-9)
    assert np.all(np.diag(d) == 0.0)


LINE = np.array([[0.0], [0.1], [0.5], [1.0], [1.05], [3.0]])
LINE_LABELS = np.array(["a", "a", "a", "b", "b", "c"])


def test_batch_hard_picks_farthest_positive_and_nearest_negative() -> None:
    t = batch_hard_triplets(LINE, LINE_LABELS)
    got = {
        int(a): (int(p), int(n)) for a, p, n in zip(t.anchor, t.positive, t.negative, strict=True)
    }
    # "c" has no positive: not an anchor.
    assert got == {0: (2, 3), 1: (2, 3), 2: (0, 3), 3: (4, 2), 4: (3, 2)}


def test_semi_hard_triplets_respect_the_definition() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(scale=0.3, size=(24, 4))
    labels = np.repeat(np.arange(6), 4)
    d = pairwise_squared_distances(e)
    t = semi_hard_triplets(e, labels, alpha=0.2, rng=np.random.default_rng(1))
    assert len(t) > 0
    for a, p, n in zip(t.anchor, t.positive, t.negative, strict=True):
        assert a != p and labels[a] == labels[p] and labels[a] != labels[n]
        semi = d[a, p] < d[a, n] < d[a, p] + 0.2
        hardest = d[a, n] == min(d[a, j] for j in range(24) if labels[j] != labels[a])
        assert semi or hardest
        assert d[a, n] < d[a, p] + 0.2  # every mined triplet has a non-zero loss


def test_semi_hard_skips_pairs_that_already_satisfy_the_margin() -> None:
    e = np.array([[0.0], [0.01], [5.0], [5.01]])
    labels = np.array([0, 0, 1, 1])
    assert len(semi_hard_triplets(e, labels)) == 0
    assert len(batch_hard_triplets(e, labels)) == 4


def test_mining_without_negatives_is_empty() -> None:
    e = np.zeros((3, 2))
    assert len(batch_hard_triplets(e, [1, 1, 1])) == 0
    assert len(semi_hard_triplets(e, [1, 1, 1])) == 0
    assert len(Triplets.empty()) == 0


def test_pk_batch_sampling() -> None:
    labels = np.repeat(["a", "b", "c", "d"], [5, 3, 1, 6])
    rng = np.random.default_rng(2)
    idx = sample_pk_batch(labels, people=3, per_person=2, rng=rng)
    picked = labels[idx]
    assert len(set(idx.tolist())) == idx.size
    assert "c" not in picked  # a single image cannot give a positive
    names, counts = np.unique(picked, return_counts=True)
    assert names.size == 3 and np.all(counts == 2)
    with pytest.raises(ConfigError, match="two people"):
        sample_pk_batch(np.array(["a", "a", "b"]), 2, 2, rng)


# ---------------------------------------------------------------------------
# Splits and metrics


def test_holdout_split_keeps_two_for_training() -> None:
    labels = np.repeat(["a", "b", "c"], [10, 3, 2])
    train, test = holdout_split(labels, 0.3, np.random.default_rng(0))
    assert set(train.tolist()) | set(test.tolist()) == set(range(15))
    assert not set(train.tolist()) & set(test.tolist())
    held = dict(zip(*np.unique(labels[test], return_counts=True), strict=True))
    assert held == {"a": 3, "b": 1}
    with pytest.raises(ConfigError):
        holdout_split(labels, 1.0, np.random.default_rng(0))


def test_verification_metrics_by_hand() -> None:
    e = np.array([[0.0, 0.0], [0.3, 0.0], [1.0, 0.0], [1.0, 0.4]])
    labels = ["x", "x", "y", "y"]
    m = verification_metrics(e, labels, threshold=0.5)
    assert m.positive_pairs == 2 and m.negative_pairs == 4
    assert m.mean_positive == pytest.approx((0.3 + 0.4) / 2)
    neg = [1.0, np.hypot(1.0, 0.4), 0.7, np.hypot(0.7, 0.4)]
    assert m.mean_negative == pytest.approx(np.mean(neg))
    assert m.balanced_accuracy == pytest.approx(1.0)
    assert verification_metrics(e, labels, threshold=0.35).balanced_accuracy == pytest.approx(0.75)
    t = best_threshold(e, labels)
    assert 0.4 < t <= 0.7


def test_head_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.npz"):
        TripletHead.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFormatError, match=r"junk\.npz"):
        TripletHead.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, kernel=np.eye(2), bias=np.zeros(2), meta=np.asarray('{"format": "x"}'))
    with pytest.raises(ModelFormatError, match="not a facegate head"):
        TripletHead.load(other)


def test_finetune_config_refuses_unusable_settings() -> None:
    with pytest.raises(ConfigError):
        FinetuneConfig(people_per_batch=1)
    with pytest.raises(ConfigError):
        FinetuneConfig(mining="random")  # type: ignore[arg-type]


def test_best_threshold_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(8)
    e = rng.normal(size=(30, 3))
    labels = np.repeat(np.arange(6), 5)
    iu, ju = np.triu_indices(30, k=1)
    dist = np.linalg.norm(e[iu] - e[ju], axis=1)
    same = labels[iu] == labels[ju]

    def score(t: float) -> float:
        return float((np.mean(dist[same] < t) + np.mean(dist[~same] >= t)) / 2)

    values = np.unique(dist)
    brute = max(score(float(t)) for t in np.r_[values[0] - 1, (values[:-1] + values[1:]) / 2])
    t = best_threshold(e, labels)
    assert score(t) == pytest.approx(brute)
    assert verification_metrics(e, labels, t).balanced_accuracy == pytest.approx(brute)
