"""Fine-tuning a small head on frozen encodings with the triplet loss.

Fine-tuning (:func:`finetune`) keeps the pretrained encoder frozen and trains
a small head on its encodings: one dense layer (identity-initialised when the
sizes match, so training starts from the encoder's own geometry) followed by
L2 normalisation. Batches hold P people x K images; triplets are mined
online in each batch from the current head's outputs (semi-hard by default,
batch-hard on request). The trained head is a pair of numpy arrays: it is
saved as ``.npz`` (no pickle) and applied without TensorFlow
(:class:`TripletHead`).

Owns :class:`TripletHead` (with its ``.npz`` format), :class:`FinetuneConfig`,
:class:`FinetuneResult`, :func:`finetune` and :func:`finetune_folders`; the
loss, the mining and the metrics come from :mod:`facegate.training.triplet`.
Only :func:`finetune` imports TensorFlow, inside the function.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError, ModelFormatError
from facegate.training.triplet import (
    ALPHA,
    FloatArray,
    Mining,
    Triplets,
    VerificationMetrics,
    batch_hard_triplets,
    best_threshold,
    holdout_split,
    mine,
    sample_pk_batch,
    triplet_loss,
    verification_metrics,
)

if TYPE_CHECKING:
    from facegate.engine.types import FaceEncoder

__all__ = [
    "HEAD_FORMAT",
    "HEAD_VERSION",
    "FinetuneConfig",
    "FinetuneResult",
    "TripletHead",
    "finetune",
    "finetune_folders",
]

log = logging.getLogger(__name__)

HEAD_FORMAT = "facegate-triplet-head"
HEAD_VERSION = 1


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
