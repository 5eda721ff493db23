"""Open-set metrics on a tiny folder whose answers are computed by hand.

Seven photos of four people, on a line (second coordinate 0) except one:

    a=(0,0) b=(0.1,0)      person 0
    c=(1,0) d=(1.6,0)      person 1
    e=(0,2)                person 2
    f=(0.5,0) g=no face    person 3

Genuine pairs: a-b 0.1, c-d 0.6, f-g inf. Impostor pairs: 18, of which 5
involve g (inf) and the 13 finite ones sorted are 0.4 (b-f), 0.5 (a-f),
0.5 (c-f), 0.9 (b-c), 1.0 (a-c), 1.1 (d-f), 1.5, 1.6, 2.0, ...
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from facegate.core.openset import (
    OpenSetSplit,
    all_pairs,
    dir_at_fpir,
    draw_split,
    far_key,
    identification_scores,
    open_set,
    rate_at_threshold,
    tar_at_far,
)

pytestmark = pytest.mark.unit

E = np.array(
    [[0, 0], [0.1, 0], [1, 0], [1.6, 0], [0, 2], [0.5, 0], [np.nan, np.nan]], dtype=np.float64
)
L = np.array([0, 0, 1, 1, 2, 3, 3])
A, B, C, D, E_, F, G = range(7)


@pytest.mark.parametrize("block", [1, 2, 1024])
def test_all_pairs_counts_and_tar(block: int) -> None:
    s = all_pairs(E, L, max_far=0.5, block=block)
    assert s.impostors == 18
    np.testing.assert_allclose(s.genuine, [0.1, 0.6, math.inf])
    np.testing.assert_allclose(s.impostor_smallest[:6], [0.4, 0.5, 0.5, 0.9, 1.0, 1.1])
    assert s.impostor_smallest.size == 10  # floor(0.5 x 18) + 1 kept
    # far 0: no false accept allowed -> threshold 0.4 -> only a-b (0.1) accepted
    low = tar_at_far(s, 0.0)
    assert (low["tar"], low["threshold"], low["false_accepts_allowed"]) == (
        pytest.approx(1 / 3),
        pytest.approx(0.4),
        0,
    )
    # 3 of 18 allowed -> threshold 0.9 (4th smallest) -> c-d (0.6) joins
    three = tar_at_far(s, 3 / 18)
    assert three["threshold"] == pytest.approx(0.9)
    assert three["tar"] == pytest.approx(2 / 3)
    assert three["impostor_pairs"] == 18 and three["meaningful"] is False
    with pytest.raises(ValueError):
        s.threshold_at_far(0.6)  # beyond what the summary kept


def test_far_keys_follow_evaluate() -> None:
    assert far_key("tar_at_far", 1e-3) == "tar_at_far_1e-3"
    assert far_key("dir_at_far", 1e-2) == "dir_at_far_1e-2"
    assert far_key("tar_at_far", 0.05) == "tar_at_far_0.05"


SPLIT = OpenSetSplit(
    gallery=(np.array([A]), np.array([C])),
    gallery_labels=np.array([0, 1]),
    mated=np.array([B, D]),
    mated_person=np.array([0, 1]),
    non_mated=np.array([E_, F, G]),
)


def test_identification_scores_by_hand() -> None:
    sc = identification_scores(E, L, SPLIT)
    np.testing.assert_allclose(sc.mated_best, [0.1, 0.6])
    np.testing.assert_allclose(sc.mated_second, [0.9, 1.6])
    assert sc.mated_right.tolist() == [True, True]
    np.testing.assert_allclose(sc.non_mated_best, [2.0, 0.5, math.inf])
    np.testing.assert_allclose(sc.non_mated_second, [math.sqrt(5), 0.5, math.inf])


def test_rates_at_a_threshold_and_margin() -> None:
    sc = identification_scores(E, L, SPLIT)
    fpir, dir_ = rate_at_threshold(sc, 0.7)
    assert (fpir, dir_) == (pytest.approx(1 / 3), 1.0)  # f (0.5) is let in
    fpir, dir_ = rate_at_threshold(sc, 0.7, margin=0.1)
    assert (fpir, dir_) == (0.0, 1.0)  # f is equally near two people: refused
    fpir, dir_ = rate_at_threshold(sc, 0.5)
    assert (fpir, dir_) == (0.0, 0.5)  # strictly under: f stays out, d too


def test_dir_at_fpir_by_hand() -> None:
    sc = identification_scores(E, L, SPLIT)
    d, t, k = dir_at_fpir(sc, 0.0)
    assert (d, t, k) == (0.5, 0.5, 0)  # no stranger: threshold at f's 0.5
    d, t, k = dir_at_fpir(sc, 0.34)
    assert (d, t, k) == (1.0, 2.0, 1)  # one stranger (f) allowed: next is e at 2.0
    d, t, k = dir_at_fpir(sc, 0.0, margin=0.1)
    assert (d, t) == (1.0, 2.0)  # f fails the margin, g has no face: e is the first


def test_a_probe_without_a_face_is_never_identified() -> None:
    split = OpenSetSplit(
        gallery=(np.array([F]),), gallery_labels=np.array([3]), mated=np.array([G]),
        mated_person=np.array([0]), non_mated=np.array([A]),
    )
    sc = identification_scores(E, L, split)
    assert sc.mated_right.tolist() == [False] and sc.mated_best[0] == math.inf
    assert rate_at_threshold(sc, 10.0) == (1.0, 0.0)  # a (0.5 from f) is let in; g never


def test_wrong_nearest_person_is_not_identified() -> None:
    # b enrolled as person 1's only template by mistake: a's probe goes to b's owner
    split = OpenSetSplit(
        gallery=(np.array([C]), np.array([B])),
        gallery_labels=np.array([1, 0]),
        mated=np.array([D]),
        mated_person=np.array([0]),
        non_mated=np.array([E_]),
    )
    sc = identification_scores(E, L, split)
    assert sc.mated_right.tolist() == [True]
    split2 = OpenSetSplit(
        split.gallery, split.gallery_labels, np.array([A]), np.array([0]), split.non_mated
    )
    sc2 = identification_scores(E, L, split2)
    assert sc2.mated_right.tolist() == [False]  # a is nearest to b (person index 1)
    assert rate_at_threshold(sc2, 1.0)[1] == 0.0


def test_draw_split_follows_the_protocol() -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(30), [1 + (i % 4) for i in range(30)])
    valid = np.ones(labels.size, dtype=bool)
    split = draw_split(labels, valid, 10, rng, templates=2)
    enrolled = set(split.gallery_labels.tolist())
    assert len(enrolled) == 10
    assert all(np.bincount(labels)[p] >= 3 for p in enrolled)
    for g, p in zip(split.gallery, split.gallery_labels, strict=True):
        assert g.size == 2 and set(labels[g]) == {p}
    used = np.concatenate([*split.gallery, split.mated, split.non_mated])
    assert sorted(used.tolist()) == list(range(labels.size))  # every photo, once
    assert set(labels[split.non_mated].tolist()).isdisjoint(enrolled)
    assert (split.gallery_labels[split.mated_person] == labels[split.mated]).all()
    with pytest.raises(ValueError, match="only"):
        draw_split(labels, valid, 20, rng, templates=2)


def test_open_set_report_keys_and_consistency() -> None:
    rng = np.random.default_rng(0)
    people = 40
    centres = rng.normal(size=(people, 16))
    labels = np.repeat(np.arange(people), 3)
    enc = centres[labels] + 0.05 * rng.normal(size=(labels.size, 16))
    doc = open_set(enc, labels, 10, draws=3, threshold=1.0, seed=1)
    assert doc["gallery_size"] == 10 and doc["draws"] == 3
    assert doc["non_mated_probes_per_draw"] == 90 and doc["mated_probes_per_draw"] == 20
    assert doc["rank1"] == 1.0  # well separated people
    assert doc["dir_at_far_1e-2"] == 1.0 and doc["fpir_at_threshold"] == 0.0
    assert "dir_at_far_1e-3" in doc and doc["meaningful_1e-3"] is False
