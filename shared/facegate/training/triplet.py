"""The triplet loss, triplet mining and verification metrics (for fine-tuning).

The loss is the seeds' formula, summed over the batch::

    J = sum_i max(||f(A_i) - f(P_i)||^2 - ||f(A_i) - f(N_i)||^2 + alpha, 0)

with alpha = 0.2. :func:`triplet_loss` is the TensorFlow version with the
notebooks' Keras signature; :func:`triplet_loss_reference` is a plain numpy
oracle for tests.

Triplet mining (semi-hard and batch-hard, over P x K batches), the
verification metrics and the hold-out split are plain numpy.

Fine-tuning a head with them lives in :mod:`facegate.training.finetune`,
which imports this module (never the other way round).

Only :func:`triplet_loss` imports TensorFlow, inside the function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError

__all__ = [
    "ALPHA",
    "FloatArray",
    "IntArray",
    "Mining",
    "Triplets",
    "VerificationMetrics",
    "batch_hard_triplets",
    "best_threshold",
    "holdout_split",
    "mine",
    "pairwise_squared_distances",
    "sample_pk_batch",
    "semi_hard_triplets",
    "triplet_loss",
    "triplet_loss_reference",
    "verification_metrics",
]

ALPHA = 0.2
"""The seeds' margin."""

Mining = Literal["semi-hard", "batch-hard"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# ---------------------------------------------------------------------------
# The loss


def triplet_loss(y_true: Any, y_pred: Sequence[Any], alpha: float = ALPHA) -> Any:
    """The triplet loss in TensorFlow, summed over the batch.

    ``y_true`` is ignored (Keras passes labels to every loss);
    ``y_pred = [anchor, positive, negative]``, each ``(m, d)``. Returns a
    scalar tensor.
    """
    import tensorflow as tf

    del y_true
    anchor, positive, negative = y_pred[0], y_pred[1], y_pred[2]
    pos_dist = tf.reduce_sum(tf.square(tf.subtract(anchor, positive)), axis=-1)
    neg_dist = tf.reduce_sum(tf.square(tf.subtract(anchor, negative)), axis=-1)
    basic = pos_dist - neg_dist + alpha
    return tf.reduce_sum(tf.maximum(basic, 0.0))


def triplet_loss_reference(
    anchor: npt.ArrayLike,
    positive: npt.ArrayLike,
    negative: npt.ArrayLike,
    alpha: float = ALPHA,
) -> float:
    """The same loss, one triplet at a time in float64 (a test oracle)."""
    a = np.atleast_2d(np.asarray(anchor, dtype=np.float64))
    p = np.atleast_2d(np.asarray(positive, dtype=np.float64))
    n = np.atleast_2d(np.asarray(negative, dtype=np.float64))
    if not a.shape == p.shape == n.shape:
        raise ValueError(f"shapes differ: {a.shape}, {p.shape}, {n.shape}")
    total = 0.0
    for ai, pi, ni in zip(a, p, n, strict=True):
        dp = float(np.sum((ai - pi) ** 2))
        dn = float(np.sum((ai - ni) ** 2))
        total += max(dp - dn + alpha, 0.0)
    return total


# ---------------------------------------------------------------------------
# Mining (pure numpy)


@dataclass(frozen=True)
class Triplets:
    """Index arrays into one batch: ``anchor[i], positive[i], negative[i]``."""

    anchor: IntArray
    positive: IntArray
    negative: IntArray

    def __len__(self) -> int:
        return int(self.anchor.shape[0])

    @classmethod
    def empty(cls) -> Triplets:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy())


def pairwise_squared_distances(embeddings: npt.ArrayLike) -> FloatArray:
    """``(N, N)`` squared L2 distances (float64, clipped at 0)."""
    e = np.asarray(embeddings, dtype=np.float64)
    sq = np.sum(e * e, axis=1)
    d = sq[:, None] - 2.0 * (e @ e.T) + sq[None, :]
    np.fill_diagonal(d, 0.0)
    out: FloatArray = np.maximum(d, 0.0)
    return out


def _masks(labels: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    lab = np.asarray(labels)
    same = lab[:, None] == lab[None, :]
    positive = same & ~np.eye(lab.shape[0], dtype=bool)
    return positive, ~same


def batch_hard_triplets(embeddings: npt.ArrayLike, labels: npt.ArrayLike) -> Triplets:
    """One triplet per anchor: its farthest positive and nearest negative
    (Hermans et al.'s "batch hard"). Anchors without a positive or a
    negative in the batch are skipped."""
    d = pairwise_squared_distances(embeddings)
    pos_mask, neg_mask = _masks(labels)
    usable = pos_mask.any(axis=1) & neg_mask.any(axis=1)
    anchors = np.flatnonzero(usable)
    if anchors.size == 0:
        return Triplets.empty()
    hardest_pos = np.argmax(np.where(pos_mask, d, -np.inf), axis=1)[anchors]
    hardest_neg = np.argmin(np.where(neg_mask, d, np.inf), axis=1)[anchors]
    return Triplets(
        anchors.astype(np.int64), hardest_pos.astype(np.int64), hardest_neg.astype(np.int64)
    )


def semi_hard_triplets(
    embeddings: npt.ArrayLike,
    labels: npt.ArrayLike,
    alpha: float = ALPHA,
    rng: np.random.Generator | None = None,
) -> Triplets:
    """FaceNet's semi-hard mining: for every anchor-positive pair, a random
    negative farther than the positive but inside the margin
    (``d(a,p) < d(a,n) < d(a,p) + alpha``, squared distances). Where no such
    negative exists, the hardest negative is used if the triplet still
    violates the margin; pairs that already satisfy it are skipped (their
    loss is zero)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    d = pairwise_squared_distances(embeddings)
    pos_mask, neg_mask = _masks(labels)
    a_out: list[int] = []
    p_out: list[int] = []
    n_out: list[int] = []
    for a, p in zip(*np.nonzero(pos_mask), strict=True):
        negs = np.flatnonzero(neg_mask[a])
        if negs.size == 0:
            continue
        dap = d[a, p]
        dan = d[a, negs]
        semi = negs[(dan > dap) & (dan < dap + alpha)]
        if semi.size:
            n = int(rng.choice(semi))
        else:
            hardest = int(negs[np.argmin(dan)])
            if d[a, hardest] >= dap + alpha:
                continue
            n = hardest
        a_out.append(int(a))
        p_out.append(int(p))
        n_out.append(n)
    if not a_out:
        return Triplets.empty()
    return Triplets(
        np.asarray(a_out, dtype=np.int64),
        np.asarray(p_out, dtype=np.int64),
        np.asarray(n_out, dtype=np.int64),
    )


def mine(
    embeddings: npt.ArrayLike,
    labels: npt.ArrayLike,
    mining: Mining,
    alpha: float = ALPHA,
    rng: np.random.Generator | None = None,
) -> Triplets:
    if mining == "semi-hard":
        return semi_hard_triplets(embeddings, labels, alpha, rng)
    if mining == "batch-hard":
        return batch_hard_triplets(embeddings, labels)
    raise ConfigError(f"unknown mining {mining!r} (semi-hard or batch-hard)")


def sample_pk_batch(
    labels: npt.ArrayLike, people: int, per_person: int, rng: np.random.Generator
) -> IntArray:
    """Indices of a P x K batch: ``people`` random labels having at least two
    samples, up to ``per_person`` random samples of each."""
    lab = np.asarray(labels)
    names, counts = np.unique(lab, return_counts=True)
    eligible = names[counts >= 2]
    if eligible.size < 2:
        raise ConfigError("fine-tuning needs at least two people with two or more images each")
    chosen = rng.choice(eligible, size=min(people, eligible.size), replace=False)
    picks: list[IntArray] = []
    for name in chosen:
        idx = np.flatnonzero(lab == name)
        k = min(per_person, idx.size)
        picks.append(rng.choice(idx, size=k, replace=False).astype(np.int64))
    return np.concatenate(picks)


# ---------------------------------------------------------------------------
# Verification metrics (pure numpy)


@dataclass(frozen=True)
class VerificationMetrics:
    """Distances over all pairs of a set of encodings (plain L2, not squared).

    ``balanced_accuracy`` = (same-pairs accepted + different-pairs rejected
    rates) / 2 at ``threshold`` (accept when distance < threshold); NaN where
    a kind of pair is absent.
    """

    mean_positive: float
    mean_negative: float
    threshold: float
    balanced_accuracy: float
    positive_pairs: int
    negative_pairs: int


def _pair_distances(
    embeddings: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    e = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels)
    iu, ju = np.triu_indices(e.shape[0], k=1)
    dist = np.sqrt(pairwise_squared_distances(e)[iu, ju])
    return dist, lab[iu] == lab[ju]


def _balanced_accuracy(dist: FloatArray, same: npt.NDArray[np.bool_], threshold: float) -> float:
    rates = []
    if same.any():
        rates.append(float(np.mean(dist[same] < threshold)))
    if (~same).any():
        rates.append(float(np.mean(dist[~same] >= threshold)))
    return float(np.mean(rates)) if len(rates) == 2 else math.nan


def best_threshold(embeddings: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The distance threshold with the best balanced accuracy on these pairs
    (accept when distance < threshold; candidates are midpoints between
    consecutive distinct distances, plus one below the smallest)."""
    dist, same = _pair_distances(embeddings, labels)
    n_same = int(same.sum())
    n_diff = int(same.size - n_same)
    if n_same == 0 or n_diff == 0:
        raise ConfigError("choosing a threshold needs same-person and different-person pairs")
    order = np.argsort(dist, kind="stable")
    d_sorted = dist[order]
    s_sorted = same[order]
    # Threshold between d_sorted[k-1] and d_sorted[k] accepts the first k pairs.
    accepted_same = np.concatenate([[0], np.cumsum(s_sorted)])
    accepted_diff = np.concatenate([[0], np.cumsum(~s_sorted)])
    k = np.concatenate([[0], np.flatnonzero(np.diff(d_sorted) > 0) + 1, [dist.size]])
    score = (accepted_same[k] / n_same + 1.0 - accepted_diff[k] / n_diff) / 2.0
    best = int(k[int(np.argmax(score))])
    if best == 0:
        return float(d_sorted[0] - 1e-6)
    if best == dist.size:
        return float(d_sorted[-1] + 1e-6)
    return float((d_sorted[best - 1] + d_sorted[best]) / 2.0)


def verification_metrics(
    embeddings: npt.ArrayLike, labels: npt.ArrayLike, threshold: float
) -> VerificationMetrics:
    dist, same = _pair_distances(embeddings, labels)
    return VerificationMetrics(
        mean_positive=float(dist[same].mean()) if same.any() else math.nan,
        mean_negative=float(dist[~same].mean()) if (~same).any() else math.nan,
        threshold=float(threshold),
        balanced_accuracy=_balanced_accuracy(dist, same, threshold),
        positive_pairs=int(same.sum()),
        negative_pairs=int((~same).sum()),
    )


def holdout_split(
    labels: npt.ArrayLike, fraction: float, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Per person, hold out ``round(fraction * n)`` images (at least one)
    while keeping at least two for training; people with fewer than three
    images stay entirely in training. Returns (train, held-out) indices."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"holdout fraction must be in [0, 1), got {fraction}")
    lab = np.asarray(labels)
    train: list[int] = []
    test: list[int] = []
    for name in np.unique(lab):
        idx = rng.permutation(np.flatnonzero(lab == name))
        n_test = 0
        if fraction > 0 and idx.size >= 3:
            n_test = min(max(1, round(fraction * idx.size)), idx.size - 2)
        test.extend(int(i) for i in idx[:n_test])
        train.extend(int(i) for i in idx[n_test:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))
