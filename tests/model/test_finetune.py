"""Fine-tuning a triplet head on real encodings: dlib's ResNet on LFW people.

The chips are fixed centre crops of LFW's 250x250 photos (where LFW puts the
face), resized to 150x150, not the engine's detected and aligned chips: the
point here is that training on real encodings behaves (loss goes down, the
head round-trips), not the accuracy of the crops.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.training.finetune import FinetuneConfig, TripletHead, finetune
from facegate.training.triplet import (
    batch_hard_triplets,
    holdout_split,
    triplet_loss_reference,
)

pytestmark = [pytest.mark.model, pytest.mark.lfw, pytest.mark.slow]

MIN_IMAGES = 5
CROP = (55, 55, 195, 195)


@pytest.fixture(scope="module")
def lfw_encodings(lfw_dir: Path) -> tuple[Any, Any, str]:
    from PIL import Image

    from facegate.engine.model_store import ResNetEmbedder

    people = sorted(
        d for d in (lfw_dir / "images").iterdir() if len(list(d.glob("*.jpg"))) >= MIN_IMAGES
    )
    paths = [(d.name, p) for d in people for p in sorted(d.glob("*.jpg"))]
    assert len(people) >= 20, "LFW View 1 should have 20+ people with 5+ photos"
    chips = []
    for _, path in paths:
        with Image.open(path) as img:
            crop = img.convert("RGB").crop(CROP).resize((150, 150), Image.Resampling.BILINEAR)
            chips.append(np.asarray(crop))
    embedder = ResNetEmbedder.load()
    encodings = embedder.embed_chips(np.stack(chips))
    labels = np.asarray([name for name, _ in paths])
    return encodings, labels, embedder.model_id


def test_finetune_on_lfw_encodings(lfw_encodings: tuple[Any, Any, str], tmp_path: Path) -> None:
    encodings, labels, model_id = lfw_encodings
    config = FinetuneConfig(epochs=10, seed=0)
    result = finetune(encodings, labels, config, base_model_id=model_id)

    # The triplet loss on the fixed training triplets goes down.
    assert result.train_triplets > 100
    assert result.train_loss_after < 0.8 * result.train_loss_before
    assert len(result.epoch_losses) == config.epochs

    # Held-out figures exist and training did not wreck the embedding.
    assert result.before is not None and result.initial is not None and result.after is not None
    assert result.heldout_images > 50
    for m in (result.before, result.initial, result.after):
        assert math.isfinite(m.balanced_accuracy) and m.mean_negative > m.mean_positive
    assert result.after.balanced_accuracy > result.initial.balanced_accuracy - 0.05

    # The saved head reloads to identical outputs and the same id.
    path = tmp_path / "head.npz"
    result.head.save(path)
    loaded = TripletHead.load(path)
    np.testing.assert_array_equal(loaded.apply(encodings), result.head.apply(encodings))
    assert loaded.model_id == result.head.model_id
    assert loaded.model_id.startswith(model_id + "+head-")
    assert loaded.base_model_id == model_id


def test_trained_head_lowers_the_loss_of_held_out_triplets(
    lfw_encodings: tuple[Any, Any, str],
) -> None:
    """Generalisation, measured independently of training: batch-hard
    triplets mined among the held-out images only (on the encoder's own
    L2-normalised encodings) score lower through the trained head.

    (Batch-hard triplets mined over all images, training and held-out
    mixed, measured higher after the head: 114.7 -> 130.2 with seed 1;
    probably the head pulls each person's training photos together faster
    than their unseen ones. Held-out accuracy, in the result, moves within
    noise.)"""
    encodings, labels, _ = lfw_encodings
    config = FinetuneConfig(epochs=10, seed=0)
    result = finetune(encodings, labels, config)
    _, held = holdout_split(labels, config.holdout, np.random.default_rng(config.seed))
    assert held.size == result.heldout_images
    x, lab = encodings[held], labels[held]
    base = x / np.linalg.norm(x, axis=1, keepdims=True)
    t = batch_hard_triplets(base, lab)
    assert len(t) == held.size
    out = result.head.apply(x)
    before = triplet_loss_reference(base[t.anchor], base[t.positive], base[t.negative])
    after = triplet_loss_reference(out[t.anchor], out[t.positive], out[t.negative])
    assert after < 0.95 * before
