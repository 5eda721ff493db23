"""The triplet loss, triplet mining, and fine-tuning a small head with them.

The loss is the seeds' formula, summed over the batch::

    J = sum_i max(||f(A_i) - f(P_i)||^2 - ||f(A_i) - f(N_i)||^2 + alpha, 0)

with alpha = 0.2. :func:`triplet_loss` is the TensorFlow version with the
notebooks' Keras signature; :func:`triplet_loss_reference` is a plain numpy
oracle for tests.

Fine-tuning (:func:`finetune`) keeps the pretrained encoder frozen and trains
a small head on its encodings: one dense layer (identity-initialised when the
sizes match, so training starts from the encoder's own geometry) followed by
L2 normalisation. Batches hold P people x K images; triplets are mined
online in each batch from the current head's outputs (semi-hard by default,
batch-hard on request). The trained head is a pair of numpy arrays: it is
saved as ``.npz`` (no pickle) and applied without TensorFlow
(:class:`TripletHead`).

Only :func:`triplet_loss` and :func:`finetune` import TensorFlow, inside the
functions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError, ModelFormatError

if TYPE_CHECKING:
    from facegate.engine.types import FaceEncoder

log = logging.getLogger(__name__)

ALPHA = 0.2
"""The seeds' margin."""

HEAD_FORMAT = "facegate-triplet-head"
HEAD_VERSION = 1

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


# ---------------------------------------------------------------------------
# The head


@dataclass(frozen=True)
class TripletHead:
    """``y = normalise(x @ kernel + bias)``: the fine-tuned projection.

    ``base_model_id`` names the encoder whose encodings it expects;
    ``model_id`` names the combination, for Redis templates and probes.
    """

    kernel: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    base_model_id: str = "unknown"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def model_id(self) -> str:
        return f"{self.base_model_id}+head-{self.digest()}"

    def digest(self) -> str:
        import hashlib

        h = hashlib.sha256(np.ascontiguousarray(self.kernel).tobytes())
        h.update(np.ascontiguousarray(self.bias).tobytes())
        return h.hexdigest()[:12]

    def apply(self, encodings: npt.ArrayLike) -> npt.NDArray[np.float32]:
        x = np.asarray(encodings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"expected (N, {self.input_dim}) encodings, got {x.shape}")
        y = x @ self.kernel + self.bias
        norm = np.sqrt(np.sum(y * y, axis=1, keepdims=True))
        out: npt.NDArray[np.float32] = (y / np.maximum(norm, 1e-12)).astype(np.float32)
        return out

    def save(self, path: Path) -> None:
        """Write an ``.npz`` (arrays + JSON metadata, no pickle)."""
        meta = {
            "format": HEAD_FORMAT,
            "version": HEAD_VERSION,
            "base_model_id": self.base_model_id,
            **self.meta,
        }
        path = Path(path)
        with path.open("wb") as fh:
            np.savez(
                fh,
                kernel=self.kernel.astype(np.float32),
                bias=self.bias.astype(np.float32),
                meta=np.asarray(json.dumps(meta, sort_keys=True)),
            )

    @classmethod
    def load(cls, path: Path) -> TripletHead:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such head file")
        try:
            with np.load(path, allow_pickle=False) as data:
                kernel = np.asarray(data["kernel"], dtype=np.float32)
                bias = np.asarray(data["bias"], dtype=np.float32)
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelFormatError(f"{path}: not a facegate head file ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
            raise ModelFormatError(f"{path}: not a facegate head file")
        if meta.get("version") != HEAD_VERSION:
            raise ModelFormatError(f"{path}: unsupported head version {meta.get('version')}")
        if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
            raise ModelFormatError(f"{path}: kernel {kernel.shape} and bias {bias.shape} disagree")
        base = str(meta.pop("base_model_id", "unknown"))
        for key in ("format", "version"):
            meta.pop(key, None)
        return cls(kernel, bias, base, meta)


# ---------------------------------------------------------------------------
# Fine-tuning


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 10
    steps_per_epoch: int | None = None
    """Default: enough P x K batches to see the training set about once."""
    people_per_batch: int = 8
    images_per_person: int = 4
    learning_rate: float = 1e-3
    alpha: float = ALPHA
    mining: Mining = "semi-hard"
    holdout: float = 0.3
    dimension: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError("epochs must be >= 0")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError("steps_per_epoch must be >= 1")
        if self.people_per_batch < 2 or self.images_per_person < 2:
            raise ConfigError("batches need at least 2 people x 2 images")
        if not (self.learning_rate > 0 and self.alpha > 0 and self.dimension > 0):
            raise ConfigError("learning_rate, alpha and dimension must be positive")
        if self.mining not in ("semi-hard", "batch-hard"):
            raise ConfigError(f"unknown mining {self.mining!r}")


@dataclass(frozen=True)
class FinetuneResult:
    """What fine-tuning did.

    ``before``: the input encodings as they are; ``initial``: the head
    before training (for an identity start, the L2-normalised input, which
    alone can move the figures); ``after``: the trained head. Each on the
    held-out images with a threshold chosen on the training images of the
    same space (``None`` without held-out images).
    ``train_loss_before/after``: :func:`triplet_loss` on one fixed set of
    training triplets (batch-hard, mined once on the initial head), with
    ``train_triplets`` triplets.
    """

    head: TripletHead
    before: VerificationMetrics | None
    initial: VerificationMetrics | None
    after: VerificationMetrics | None
    train_loss_before: float
    train_loss_after: float
    train_triplets: int
    epoch_losses: tuple[float, ...]
    train_images: int
    heldout_images: int
    people: int

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["head"] = {"model_id": self.head.model_id, "dimension": self.head.dimension}
        return out


def _initial_kernel(input_dim: int, dim: int, rng: np.random.Generator) -> FloatArray:
    if input_dim == dim:
        return np.eye(dim, dtype=np.float64)
    limit = math.sqrt(6.0 / (input_dim + dim))
    return rng.uniform(-limit, limit, size=(input_dim, dim))


def finetune(
    encodings: npt.ArrayLike,
    labels: Sequence[str] | npt.ArrayLike,
    config: FinetuneConfig | None = None,
    *,
    base_model_id: str = "unknown",
    progress: Callable[[int, float], None] | None = None,
) -> FinetuneResult:
    """Train a triplet head on frozen encodings ``(N, D)`` with labels ``(N,)``.

    Deterministic for a given ``config.seed`` (numpy sampling, fixed
    initialisation, CPU float32 arithmetic). ``progress(epoch, mean_loss)``
    is called after each epoch.
    """
    import tensorflow as tf

    cfg = config or FinetuneConfig()
    x_all = np.asarray(encodings, dtype=np.float32)
    lab_all = np.asarray(labels)
    if x_all.ndim != 2 or x_all.shape[0] != lab_all.shape[0] or x_all.shape[0] == 0:
        raise ConfigError(f"encodings {x_all.shape} and labels {lab_all.shape} do not match")
    if not np.all(np.isfinite(x_all)):
        raise ConfigError("encodings contain NaN or infinite values")
    rng = np.random.default_rng(cfg.seed)
    train_idx, test_idx = holdout_split(lab_all, cfg.holdout, rng)
    x_train, lab_train = x_all[train_idx], lab_all[train_idx]
    names, counts = np.unique(lab_train, return_counts=True)
    if int(np.sum(counts >= 2)) < 2:
        raise ConfigError("fine-tuning needs at least two people with two or more images each")

    input_dim = int(x_all.shape[1])
    kernel = tf.Variable(
        _initial_kernel(input_dim, cfg.dimension, rng).astype(np.float32), name="head_kernel"
    )
    bias = tf.Variable(np.zeros(cfg.dimension, dtype=np.float32), name="head_bias")
    variables = [kernel, bias]

    def forward(x: Any) -> Any:
        return tf.math.l2_normalize(tf.matmul(x, kernel) + bias, axis=-1, epsilon=1e-24)

    def embed(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(forward(tf.constant(x)), dtype=np.float32)

    def loss_on(x: npt.NDArray[np.float32], t: Triplets) -> float:
        if len(t) == 0:
            return 0.0
        e = embed(x)
        return float(triplet_loss(None, [e[t.anchor], e[t.positive], e[t.negative]], cfg.alpha))

    # Adam written out (a handful of lines) rather than a Keras optimizer:
    # its state is plain variables here, so runs are reproducible and free
    # of Keras global state.
    m = [tf.Variable(tf.zeros_like(v)) for v in variables]
    s = [tf.Variable(tf.zeros_like(v)) for v in variables]
    b1, b2, eps = 0.9, 0.999, 1e-7

    def train_step_eager(x: Any, a: Any, p: Any, n: Any, step: Any) -> Any:
        with tf.GradientTape() as tape:
            e = forward(x)
            loss = triplet_loss(
                None, [tf.gather(e, a), tf.gather(e, p), tf.gather(e, n)], cfg.alpha
            )
        grads = tape.gradient(loss, variables)
        lr = cfg.learning_rate * tf.sqrt(1.0 - b2**step) / (1.0 - b1**step)
        for v, g, mv, sv in zip(variables, grads, m, s, strict=True):
            mv.assign(b1 * mv + (1.0 - b1) * g)
            sv.assign(b2 * sv + (1.0 - b2) * tf.square(g))
            v.assign_sub(lr * mv / (tf.sqrt(sv) + eps))
        return loss

    train_step: Callable[..., Any] = tf.function(train_step_eager, reduce_retracing=True)

    initial_head = TripletHead(
        np.asarray(kernel.numpy(), dtype=np.float32), np.asarray(bias.numpy(), dtype=np.float32)
    )
    fixed = batch_hard_triplets(embed(x_train), lab_train)
    loss_before = loss_on(x_train, fixed)
    batch = cfg.people_per_batch * cfg.images_per_person
    steps = cfg.steps_per_epoch or max(1, math.ceil(x_train.shape[0] / batch))
    epoch_losses: list[float] = []
    step_no = 0
    for epoch in range(cfg.epochs):
        losses: list[float] = []
        for _ in range(steps):
            idx = sample_pk_batch(lab_train, cfg.people_per_batch, cfg.images_per_person, rng)
            xb = x_train[idx]
            t = mine(embed(xb), lab_train[idx], cfg.mining, cfg.alpha, rng)
            if len(t) == 0:
                losses.append(0.0)
                continue
            step_no += 1
            loss = train_step(
                tf.constant(xb),
                tf.constant(t.anchor),
                tf.constant(t.positive),
                tf.constant(t.negative),
                tf.constant(float(step_no)),
            )
            losses.append(float(loss) / len(t))
        epoch_losses.append(float(np.mean(losses)))
        log.debug("finetune epoch %d: mean triplet loss %.4f", epoch + 1, epoch_losses[-1])
        if progress is not None:
            progress(epoch + 1, epoch_losses[-1])
    loss_after = loss_on(x_train, fixed)

    head = TripletHead(
        kernel=np.asarray(kernel.numpy(), dtype=np.float32),
        bias=np.asarray(bias.numpy(), dtype=np.float32),
        base_model_id=base_model_id,
        meta={
            "alpha": cfg.alpha,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "mining": cfg.mining,
            "people": [str(n) for n in names],
        },
    )
    before = initial = after = None
    if test_idx.size:
        x_test, lab_test = x_all[test_idx], lab_all[test_idx]

        def held_out(f: Callable[[npt.NDArray[np.float32]], npt.ArrayLike]) -> VerificationMetrics:
            threshold = best_threshold(f(x_train), lab_train)
            return verification_metrics(f(x_test), lab_test, threshold)

        before = held_out(lambda v: v)
        initial = held_out(initial_head.apply)
        after = held_out(head.apply)
    return FinetuneResult(
        head=head,
        before=before,
        initial=initial,
        after=after,
        train_loss_before=loss_before,
        train_loss_after=loss_after,
        train_triplets=len(fixed),
        epoch_losses=tuple(epoch_losses),
        train_images=int(train_idx.size),
        heldout_images=int(test_idx.size),
        people=int(np.unique(lab_all).size),
    )


def finetune_folders(
    engine: FaceEncoder,
    root: Path,
    config: FinetuneConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[FinetuneResult, list[str]]:
    """Encode a database folder (one sub-folder per person) with ``engine``
    and fine-tune a head on it; also returns the skipped-image warnings.
    ``progress(n)`` is called as images are encoded."""
    from facegate.engine.folders import encode_database

    templates, warnings = encode_database(engine, Path(root), progress=progress)
    if not templates:
        raise ConfigError(f"{root}: no usable face images to fine-tune on")
    encodings = np.concatenate([templates[name] for name in templates], axis=0)
    labels = np.asarray([name for name in templates for _ in range(templates[name].shape[0])])
    result = finetune(encodings, labels, config, base_model_id=engine.model_id)
    return result, warnings
