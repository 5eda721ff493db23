"""The seeds' own encoder: OpenFace's nn4.small2 (Inception, 96x96 -> 128-d).

The course notebooks build this network in Keras (channels-first) and fill it
from per-layer CSV files exported from the OpenFace Torch model. This module
rebuilds the same graph channels-last (faster on CPU and on GPUs with cuDNN;
the arithmetic is identical once the weights are laid out for it), with the
notebooks' layer names so the CSV files address the same layers. The CSV
layout and its loader live in :mod:`facegate.training.nn4_csv` (its public
names are importable from here).

The weights themselves ship with no package; anyone holding them can point
:meth:`Nn4Embedder.load` at the folder. Nothing here imports TensorFlow at
module import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.engine.types import Chips, Encodings
from facegate.training.nn4_csv import (
    DENSE_FILES,
    DENSE_LAYER,
    LAYER_NAMES,
    csv_files_for,
    load_csv_weights,
    read_csv_weights,
    save_csv_weights,
    weights_digest,
)

__all__ = [
    "BN1_EPSILON",
    "BN_EPSILON",
    "DENSE_FILES",
    "DENSE_LAYER",
    "DIMENSION",
    "INPUT_SIZE",
    "LAYER_NAMES",
    "PARAMETER_COUNT",
    "Array",
    "Nn4Embedder",
    "build_nn4_small2",
    "csv_files_for",
    "load_csv_weights",
    "preprocess_96",
    "read_csv_weights",
    "resize_chips_96",
    "save_csv_weights",
    "weights_digest",
]

INPUT_SIZE = 96
DIMENSION = 128
PARAMETER_COUNT = 3_743_280
"""``count_params()`` of the notebooks' model (trainable + batch-norm statistics)."""

BN_EPSILON = 1e-5
BN1_EPSILON = 1e-3
"""The notebooks give every batch norm ``epsilon=0.00001`` except ``bn1``,
which is left at Keras' default 0.001; kept as is so that their weights
reproduce their outputs."""

Array = npt.NDArray[np.float32]


# ---------------------------------------------------------------------------
# Preprocessing


def preprocess_96(images: npt.ArrayLike) -> Array:
    """``(N, 96, 96, 3)`` uint8 RGB -> the network's float32 input.

    The notebooks' ``img_to_encoding`` reads a 96x96 file with OpenCV (BGR),
    reverses the channels to RGB, moves channels first, divides by 255 and
    rounds to 12 decimals (a no-op at float32 precision, kept for fidelity).
    Images in facegate are already RGB, so only the scaling remains; the
    layout stays channels-last because this model is built channels-last.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[np.newaxis]
    if arr.ndim != 4 or arr.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"expected (N, 96, 96, 3) RGB images, got shape {arr.shape}")
    scaled = np.around(arr.astype(np.float64) / 255.0, decimals=12)
    return scaled.astype(np.float32)


def resize_chips_96(chips: Chips) -> npt.NDArray[np.uint8]:
    """dlib's 150x150 chips -> 96x96 by area averaging (Pillow ``BOX``).

    This is a plain resize of the whole chip (dlib's template with 25%
    padding), not OpenFace's own alignment (outer eyes and nose at fixed
    96x96 positions); weights trained on OpenFace crops see faces a little
    smaller here than they were trained on.
    """
    from PIL import Image as PILImage

    arr = np.asarray(chips)
    if arr.ndim != 4 or arr.shape[3] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 chips, got {arr.shape} {arr.dtype}")
    if arr.shape[1:3] == (INPUT_SIZE, INPUT_SIZE):
        return arr
    out = np.empty((arr.shape[0], INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    for i, chip in enumerate(arr):
        img = PILImage.fromarray(chip, mode="RGB")
        out[i] = np.asarray(img.resize((INPUT_SIZE, INPUT_SIZE), PILImage.Resampling.BOX))
    return out


# ---------------------------------------------------------------------------
# The network


def build_nn4_small2(*, name: str = "nn4_small2") -> Any:
    """The notebooks' ``faceRecoModel`` for ``(96, 96, 3)`` input, channels-last.

    Same layers, names, paddings, pool sizes and strides as the notebook;
    output ``(N, 128)`` L2-normalised. Weights are Keras' random defaults
    until :func:`load_csv_weights` fills them.
    """
    import keras
    from keras import layers

    def conv_bn(
        x: Any,
        conv: str,
        bn: str,
        filters: int,
        kernel: int,
        strides: int = 1,
        epsilon: float = BN_EPSILON,
    ) -> Any:
        x = layers.Conv2D(filters, kernel, strides=strides, name=conv)(x)
        x = layers.BatchNormalization(axis=-1, epsilon=epsilon, name=bn)(x)
        return layers.Activation("relu")(x)

    def pad(x: Any, amount: int | tuple[tuple[int, int], tuple[int, int]]) -> Any:
        return layers.ZeroPadding2D(padding=amount)(x)

    def branch(
        x: Any,
        prefix: str,
        mid: int,
        out: int,
        kernel: int,
        strides: int = 1,
    ) -> Any:
        """1x1 reduction then a padded ``kernel`` conv (``<prefix>_conv1/2``)."""
        y = conv_bn(x, f"{prefix}_conv1", f"{prefix}_bn1", mid, 1)
        y = pad(y, kernel // 2)
        return conv_bn(y, f"{prefix}_conv2", f"{prefix}_bn2", out, kernel, strides)

    def single(x: Any, prefix: str, filters: int) -> Any:
        """One 1x1 conv (``<prefix>_conv`` / ``<prefix>_bn``)."""
        return conv_bn(x, f"{prefix}_conv", f"{prefix}_bn", filters, 1)

    def max_pool(x: Any) -> Any:
        return layers.MaxPooling2D(pool_size=3, strides=2)(x)

    def avg_pool(x: Any) -> Any:
        return layers.AveragePooling2D(pool_size=3, strides=3)(x)

    def concat(parts: Sequence[Any]) -> Any:
        return layers.Concatenate(axis=-1)(list(parts))

    inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = pad(inputs, 3)
    x = conv_bn(x, "conv1", "bn1", 64, 7, strides=2, epsilon=BN1_EPSILON)
    x = pad(x, 1)
    x = max_pool(x)
    x = conv_bn(x, "conv2", "bn2", 64, 1)
    x = pad(x, 1)
    x = conv_bn(x, "conv3", "bn3", 192, 3)
    x = pad(x, 1)
    x = max_pool(x)  # 12x12x192

    # 3a -> 12x12x256
    x = concat(
        [
            branch(x, "inception_3a_3x3", 96, 128, 3),
            branch(x, "inception_3a_5x5", 16, 32, 5),
            pad(single(max_pool(x), "inception_3a_pool", 32), ((3, 4), (3, 4))),
            single(x, "inception_3a_1x1", 64),
        ]
    )
    # 3b -> 12x12x320
    x = concat(
        [
            branch(x, "inception_3b_3x3", 96, 128, 3),
            branch(x, "inception_3b_5x5", 32, 64, 5),
            pad(single(avg_pool(x), "inception_3b_pool", 64), 4),
            single(x, "inception_3b_1x1", 64),
        ]
    )
    # 3c -> 6x6x640
    x = concat(
        [
            branch(x, "inception_3c_3x3", 128, 256, 3, strides=2),
            branch(x, "inception_3c_5x5", 32, 64, 5, strides=2),
            pad(max_pool(x), ((0, 1), (0, 1))),
        ]
    )
    # 4a -> 6x6x640
    x = concat(
        [
            branch(x, "inception_4a_3x3", 96, 192, 3),
            branch(x, "inception_4a_5x5", 32, 64, 5),
            pad(single(avg_pool(x), "inception_4a_pool", 128), 2),
            single(x, "inception_4a_1x1", 256),
        ]
    )
    # 4e -> 3x3x1024
    x = concat(
        [
            branch(x, "inception_4e_3x3", 160, 256, 3, strides=2),
            branch(x, "inception_4e_5x5", 64, 128, 5, strides=2),
            pad(max_pool(x), ((0, 1), (0, 1))),
        ]
    )
    # 5a -> 3x3x736
    x = concat(
        [
            branch(x, "inception_5a_3x3", 96, 384, 3),
            pad(single(avg_pool(x), "inception_5a_pool", 96), 1),
            single(x, "inception_5a_1x1", 256),
        ]
    )
    # 5b -> 3x3x736
    x = concat(
        [
            branch(x, "inception_5b_3x3", 96, 384, 3),
            pad(single(max_pool(x), "inception_5b_pool", 96), 1),
            single(x, "inception_5b_1x1", 256),
        ]
    )
    x = layers.AveragePooling2D(pool_size=3, strides=1)(x)  # 1x1x736
    x = layers.Flatten()(x)  # 1x1 spatial: same order as channels-first
    x = layers.Dense(DIMENSION, name=DENSE_LAYER)(x)
    outputs = layers.UnitNormalization(axis=-1, name="l2_normalize")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


# ---------------------------------------------------------------------------
# The ChipEmbedder


class Nn4Embedder:
    """:class:`facegate.engine.types.ChipEmbedder` over nn4.small2.

    Takes the engine's 150x150 dlib chips, resizes them to 96x96
    (:func:`resize_chips_96`), scales them like the notebooks
    (:func:`preprocess_96`) and returns L2-normalised 128-d encodings. Also
    accepts chips that are already 96x96. The notebooks' verify threshold for
    these weights is 0.7.
    """

    dimension: int = DIMENSION

    def __init__(self, model: Any, model_id: str) -> None:
        import tensorflow as tf

        self.model = model
        self.model_id = model_id
        self._forward: Callable[[Any], Any] = tf.function(
            lambda x: model(x, training=False), reduce_retracing=True
        )

    @classmethod
    def load(cls, weights_dir: Path) -> Nn4Embedder:
        """Build the network and fill it from the CSV folder."""
        model = build_nn4_small2()
        load_csv_weights(model, weights_dir)
        return cls(model, f"nn4.small2-csv-{weights_digest(model, weights_dir)}")

    def embed_chips(self, chips: Chips) -> Encodings:
        arr = np.asarray(chips)
        if arr.ndim == 4 and arr.shape[0] == 0:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        x = preprocess_96(resize_chips_96(arr))  # both validate shape and dtype
        return np.asarray(self._forward(x), dtype=np.float32)

    def embed_96(self, images: npt.ArrayLike) -> Encodings:
        """Encodings of 96x96 RGB uint8 images (the notebooks' input)."""
        return np.asarray(self._forward(preprocess_96(images)), dtype=np.float32)
