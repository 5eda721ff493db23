"""The triplet loss in TensorFlow (against the numpy reference, hand cases,
the seeds' figures) and fine-tuning a head on synthetic clusters, from
arrays, from folders and from the command line (a stand-in engine, no
pretrained weights). Mining and metrics are in ``tests/unit/test_triplet.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.core.errors import ConfigError
from facegate.training.finetune import FinetuneConfig, TripletHead, finetune
from facegate.training.triplet import (
    batch_hard_triplets,
    holdout_split,
    triplet_loss,
    triplet_loss_reference,
)

# model: runs TensorFlow (the loss, the training loop); no pretrained files.
pytestmark = pytest.mark.model


def tf_loss(a: Any, p: Any, n: Any, alpha: float = 0.2) -> float:
    import tensorflow as tf

    y_pred = [tf.constant(a, tf.float32), tf.constant(p, tf.float32), tf.constant(n, tf.float32)]
    return float(triplet_loss(None, y_pred, alpha))


# ---------------------------------------------------------------------------
# The loss


@pytest.mark.parametrize(("seed", "m", "d"), [(0, 1, 128), (1, 5, 128), (2, 7, 3), (3, 64, 16)])
def test_tf_loss_matches_the_reference(seed: int, m: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    a, p, n = (rng.normal(scale=0.3, size=(m, d)).astype(np.float32) for _ in range(3))
    for alpha in (0.2, 0.5):
        want = triplet_loss_reference(a, p, n, alpha)
        assert tf_loss(a, p, n, alpha) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_far_negative_gives_exactly_zero() -> None:
    a = np.array([[0.0, 0.0]])
    p = np.array([[0.1, 0.0]])
    n = np.array([[3.0, 0.0]])
    assert tf_loss(a, p, n) == 0.0
    assert triplet_loss_reference(a, p, n) == 0.0


def test_hand_worked_value() -> None:
    # Triplet 1: |a-p|^2 = 1, |a-n|^2 = 0.25 -> 1 - 0.25 + 0.2 = 0.95.
    # Triplet 2: negative far away -> 0. Sum over the batch: 0.95.
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    p = np.array([[1.0, 0.0], [1.0, 1.0]])
    n = np.array([[0.0, 0.5], [5.0, 5.0]])
    assert tf_loss(a, p, n) == pytest.approx(0.95, abs=1e-6)
    assert triplet_loss_reference(a, p, n) == pytest.approx(0.95, abs=1e-12)
    assert tf_loss(a, p, n, alpha=0.5) == pytest.approx(1.25, abs=1e-6)


def test_y_true_is_ignored_and_tuples_work() -> None:
    import tensorflow as tf

    a = tf.constant([[0.0, 0.0]])
    p = tf.constant([[1.0, 0.0]])
    n = tf.constant([[0.0, 0.5]])
    assert float(triplet_loss((None, None, None), (a, p, n))) == pytest.approx(0.95)
    assert float(triplet_loss(tf.zeros(1), [a, p, n])) == pytest.approx(0.95)


def test_seeds_figure_tf2() -> None:
    """The TF2 notebook: tf.random.set_seed(1), three random_normal draws
    with op seed 1 -> 527.2598."""
    import tensorflow as tf

    tf.random.set_seed(1)
    y_pred = (
        tf.random.normal([3, 128], mean=6, stddev=0.1, seed=1),
        tf.random.normal([3, 128], mean=1, stddev=1, seed=1),
        tf.random.normal([3, 128], mean=3, stddev=4, seed=1),
    )
    assert float(triplet_loss((None, None, None), y_pred)) == pytest.approx(527.2598, abs=1e-3)


def test_seeds_figure_tf1_graph() -> None:
    """The TF1 notebook ran in a graph with set_random_seed(1) -> 528.143."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        y_pred = (
            tf.compat.v1.random_normal([3, 128], mean=6, stddev=0.1, seed=1),
            tf.compat.v1.random_normal([3, 128], mean=1, stddev=1, seed=1),
            tf.compat.v1.random_normal([3, 128], mean=3, stddev=4, seed=1),
        )
        loss = triplet_loss((None, None, None), y_pred)
        with tf.compat.v1.Session(graph=graph) as session:
            value = float(session.run(loss))
    assert value == pytest.approx(528.143, abs=1e-3)


# ---------------------------------------------------------------------------
# Fine-tuning on synthetic clusters


def clusters(seed: int, people: int = 10, per: int = 10, dim: int = 16) -> tuple[Any, Any]:
    """Identity lives in 4 dimensions with little noise; the other
    dimensions are large per-image noise: a linear head can learn to drop
    them, and that generalises to held-out images."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((people, dim))
    centres[:, :4] = rng.normal(scale=0.5, size=(people, 4))
    scale = np.r_[np.full(4, 0.1), np.full(dim - 4, 0.4)]
    x = np.repeat(centres, per, axis=0) + rng.normal(size=(people * per, dim)) * scale
    labels = np.repeat([f"person{i}" for i in range(people)], per)
    return x.astype(np.float32), labels


SMALL = FinetuneConfig(
    epochs=20,
    steps_per_epoch=5,
    people_per_batch=6,
    images_per_person=4,
    learning_rate=1e-2,
    dimension=16,
    seed=3,
)


def test_finetune_reduces_the_training_triplet_loss() -> None:
    x, labels = clusters(0)
    result = finetune(x, labels, SMALL, base_model_id="synthetic")
    assert result.train_triplets > 0
    assert result.train_loss_after < 0.5 * result.train_loss_before
    assert result.before is not None and result.after is not None
    assert result.initial is not None
    assert result.initial.positive_pairs == result.after.positive_pairs > 0
    assert result.after.balanced_accuracy > result.before.balanced_accuracy
    assert result.after.balanced_accuracy > result.initial.balanced_accuracy
    # Raw and head distances have different scales: compare their ratios.
    ratio_before = result.before.mean_negative / result.before.mean_positive
    ratio_after = result.after.mean_negative / result.after.mean_positive
    assert ratio_after > ratio_before
    assert result.heldout_images + result.train_images == x.shape[0]
    assert result.people == 10
    assert len(result.epoch_losses) == SMALL.epochs
    assert result.head.model_id.startswith("synthetic+head-")


def test_head_numpy_forward_matches_training_forward() -> None:
    """The numpy head reproduces the TF forward used in training: the loss
    on the fixed training triplets recomputed with it equals
    train_loss_after."""
    x, labels = clusters(1)
    cfg = FinetuneConfig(epochs=5, people_per_batch=6, images_per_person=4, dimension=16, seed=5)
    result = finetune(x, labels, cfg)
    rng = np.random.default_rng(cfg.seed)
    train, _ = holdout_split(labels, cfg.holdout, rng)
    out = result.head.apply(x[train])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # The fixed triplets are batch-hard on the initial head = normalised input.
    init = x[train] / np.linalg.norm(x[train], axis=1, keepdims=True)
    t = batch_hard_triplets(init, labels[train])
    assert len(t) == result.train_triplets
    recomputed = triplet_loss_reference(out[t.anchor], out[t.positive], out[t.negative])
    assert recomputed == pytest.approx(result.train_loss_after, rel=1e-4, abs=1e-4)


def test_finetune_is_deterministic_per_seed() -> None:
    x, labels = clusters(2)
    cfg = FinetuneConfig(epochs=3, people_per_batch=6, images_per_person=4, dimension=16, seed=9)
    a = finetune(x, labels, cfg)
    b = finetune(x, labels, cfg)
    np.testing.assert_array_equal(a.head.kernel, b.head.kernel)
    assert a.epoch_losses == b.epoch_losses
    c = finetune(x, labels, FinetuneConfig(**{**cfg.__dict__, "seed": 10}))
    assert not np.array_equal(a.head.kernel, c.head.kernel)


def test_head_save_and_load(tmp_path: Path) -> None:
    x, labels = clusters(3)
    result = finetune(x, labels, FinetuneConfig(epochs=2, dimension=8, seed=1))
    assert result.head.kernel.shape == (16, 8)  # sizes differ: random init, not identity
    path = tmp_path / "head.npz"
    result.head.save(path)
    loaded = TripletHead.load(path)
    np.testing.assert_array_equal(loaded.apply(x), result.head.apply(x))
    assert loaded.model_id == result.head.model_id
    assert loaded.meta["alpha"] == 0.2 and loaded.meta["seed"] == 1
    with pytest.raises(ValueError, match="16"):
        loaded.apply(np.zeros((2, 15), dtype=np.float32))


def test_finetune_refuses_unusable_input() -> None:
    with pytest.raises(ConfigError, match="two people"):
        finetune(np.zeros((4, 8), np.float32), ["a"] * 4, FinetuneConfig(epochs=1, dimension=8))
    with pytest.raises(ConfigError, match="do not match"):
        finetune(np.zeros((4, 8), np.float32), ["a", "b"], FinetuneConfig(epochs=1))


# ---------------------------------------------------------------------------
# Folders and the command line, with a stand-in engine


class ColourEngine:
    """A FaceEncoder stand-in: one face per image whose 16-d encoding is the
    image's mean colour in identity dimensions plus per-image noise read
    from its pixels (so that identity is what the folders say it is)."""

    model_id = "colour-test"
    dimension = 16

    def encode_images(self, images: Any) -> list[list[Any]]:
        from facegate.engine.types import Box, Face

        out = []
        for img in images:
            arr = np.asarray(img, dtype=np.float32) / 255.0
            enc = np.concatenate([arr[0, 0], arr[1, 0], arr[2:, :].reshape(-1)[:10]])
            box = Box(0.0, 0.0, float(arr.shape[1]), float(arr.shape[0]), 0.99)
            face = Face(box, np.zeros((5, 2), np.float32), 100.0, enc.astype(np.float32))
            out.append([face])
        return out

    def embed_chips(self, chips: Any) -> Any:
        raise NotImplementedError


def make_folders(root: Path, people: int = 6, per: int = 6) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(people):
        colour = rng.integers(30, 225, size=6)
        (root / f"person{i}").mkdir(parents=True)
        for j in range(per):
            img = rng.integers(0, 256, size=(4, 4, 3)).astype(np.int64)
            img[0, 0] = colour[:3] + rng.integers(-8, 9, size=3)
            img[1, 0] = colour[3:] + rng.integers(-8, 9, size=3)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                root / f"person{i}" / f"{j}.png"
            )


def test_finetune_folders_with_a_stand_in_engine(tmp_path: Path) -> None:
    from facegate.training.finetune import finetune_folders

    make_folders(tmp_path / "db")
    cfg = FinetuneConfig(epochs=5, people_per_batch=4, images_per_person=3, dimension=16)
    result, warnings = finetune_folders(ColourEngine(), tmp_path / "db", cfg)  # type: ignore[arg-type]
    assert warnings == []
    assert result.people == 6
    assert result.train_images + result.heldout_images == 36
    assert result.head.base_model_id == "colour-test"
    assert result.train_triplets == result.train_images  # one batch-hard triplet per anchor
    assert result.after is not None and result.after.positive_pairs == 6  # 2 held out each


def test_cli_finetune_trains_and_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json

    from facegate.training import cli as cli_finetune

    make_folders(tmp_path / "db")
    monkeypatch.setattr(cli_finetune, "_engine", lambda weights: ColourEngine())
    parser = argparse.ArgumentParser(prog="facegate")
    cli_finetune.register(parser.add_subparsers())
    out = tmp_path / "head.npz"
    args = parser.parse_args(
        ["finetune", "--db", str(tmp_path / "db"), "--out", str(out), "--epochs", "3"]
    )
    assert args.handler(args) == 0
    text = capsys.readouterr().out
    assert "balanced accuracy" in text and str(out) in text
    head = TripletHead.load(out)
    assert head.base_model_id == "colour-test" and head.meta["epochs"] == 3

    args = parser.parse_args(
        ["finetune", "--db", str(tmp_path / "db"), "--out", str(out), "--json", "--seed", "4"]
    )
    assert args.handler(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["out"] == str(out) and doc["people"] == 6
    assert doc["head"]["model_id"] == TripletHead.load(out).model_id
    assert set(doc["after"]) >= {"mean_positive", "mean_negative", "balanced_accuracy"}

    bad = parser.parse_args(["finetune", "--db", str(tmp_path / "nope"), "--out", str(out)])
    with pytest.raises(ConfigError, match="nope"):
        bad.handler(bad)
