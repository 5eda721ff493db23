"""The seeds' CSV weight files of nn4.small2: read, check, load, save, digest.

The notebooks fill their Keras model from per-layer CSV files exported from
the OpenFace Torch model; this module reads and writes that layout for the
channels-last model of :func:`facegate.training.nn4.build_nn4_small2`
(layers addressed by the notebooks' names, :data:`LAYER_NAMES`):

* conv ``<layer>_w.csv``: ``out*in*kh*kw`` values in Torch order
  ``(out, in, kh, kw)``, transposed here to Keras' ``(kh, kw, in, out)``;
  ``<layer>_b.csv``: ``out`` biases.
* batch norm ``<layer>_w.csv`` (gamma), ``_b`` (beta), ``_m`` (moving mean),
  ``_v`` (moving variance), ``C`` values each.
* the final dense layer ``dense_w.csv`` (``128*736`` values, ``(out, in)``
  order, transposed to ``(in, out)``) and ``dense_b.csv``.

Values may be split over lines in any way; only their count and order
matter. Every file is checked against the shape the model expects and a
mismatch is a :class:`~facegate.core.errors.ModelFormatError` naming the file.
:func:`load_csv_weights` checks every file before it changes any layer. Nothing here
imports TensorFlow; :mod:`facegate.training.nn4` re-exports the public names.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError, ModelFormatError

__all__ = [
    "DENSE_FILES",
    "DENSE_LAYER",
    "LAYER_NAMES",
    "csv_files_for",
    "load_csv_weights",
    "read_csv_weights",
    "save_csv_weights",
    "weights_digest",
]

log = logging.getLogger(__name__)

DENSE_LAYER = "dense_layer"
DENSE_FILES = ("dense_w", "dense_b")

LAYER_NAMES: tuple[str, ...] = (
    "conv1", "bn1", "conv2", "bn2", "conv3", "bn3",
    "inception_3a_1x1_conv", "inception_3a_1x1_bn",
    "inception_3a_pool_conv", "inception_3a_pool_bn",
    "inception_3a_5x5_conv1", "inception_3a_5x5_conv2",
    "inception_3a_5x5_bn1", "inception_3a_5x5_bn2",
    "inception_3a_3x3_conv1", "inception_3a_3x3_conv2",
    "inception_3a_3x3_bn1", "inception_3a_3x3_bn2",
    "inception_3b_3x3_conv1", "inception_3b_3x3_conv2",
    "inception_3b_3x3_bn1", "inception_3b_3x3_bn2",
    "inception_3b_5x5_conv1", "inception_3b_5x5_conv2",
    "inception_3b_5x5_bn1", "inception_3b_5x5_bn2",
    "inception_3b_pool_conv", "inception_3b_pool_bn",
    "inception_3b_1x1_conv", "inception_3b_1x1_bn",
    "inception_3c_3x3_conv1", "inception_3c_3x3_conv2",
    "inception_3c_3x3_bn1", "inception_3c_3x3_bn2",
    "inception_3c_5x5_conv1", "inception_3c_5x5_conv2",
    "inception_3c_5x5_bn1", "inception_3c_5x5_bn2",
    "inception_4a_3x3_conv1", "inception_4a_3x3_conv2",
    "inception_4a_3x3_bn1", "inception_4a_3x3_bn2",
    "inception_4a_5x5_conv1", "inception_4a_5x5_conv2",
    "inception_4a_5x5_bn1", "inception_4a_5x5_bn2",
    "inception_4a_pool_conv", "inception_4a_pool_bn",
    "inception_4a_1x1_conv", "inception_4a_1x1_bn",
    "inception_4e_3x3_conv1", "inception_4e_3x3_conv2",
    "inception_4e_3x3_bn1", "inception_4e_3x3_bn2",
    "inception_4e_5x5_conv1", "inception_4e_5x5_conv2",
    "inception_4e_5x5_bn1", "inception_4e_5x5_bn2",
    "inception_5a_3x3_conv1", "inception_5a_3x3_conv2",
    "inception_5a_3x3_bn1", "inception_5a_3x3_bn2",
    "inception_5a_pool_conv", "inception_5a_pool_bn",
    "inception_5a_1x1_conv", "inception_5a_1x1_bn",
    "inception_5b_3x3_conv1", "inception_5b_3x3_conv2",
    "inception_5b_3x3_bn1", "inception_5b_3x3_bn2",
    "inception_5b_pool_conv", "inception_5b_pool_bn",
    "inception_5b_1x1_conv", "inception_5b_1x1_bn",
    DENSE_LAYER,
)  # fmt: skip
"""Every layer with weights, in the notebooks' ``WEIGHTS`` order."""


def _layer_kind(layer: Any) -> str:
    cls = type(layer).__name__
    if cls == "Conv2D":
        return "conv"
    if cls == "BatchNormalization":
        return "bn"
    if cls == "Dense":
        return "dense"
    raise ModelFormatError(f"layer {layer.name!r} ({cls}) has no CSV weights in this layout")


def csv_files_for(model: Any, layer_name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The CSV file stems of one layer and the shape each holds, in the
    notebooks' layout (conv ``(out, in, kh, kw)``, dense ``(out, in)``)."""
    layer = model.get_layer(layer_name)
    kind = _layer_kind(layer)
    shapes = [tuple(int(d) for d in w.shape) for w in layer.weights]
    if kind == "conv":
        kh, kw, cin, cout = shapes[0]
        return [(f"{layer_name}_w", (cout, cin, kh, kw)), (f"{layer_name}_b", (cout,))]
    if kind == "bn":
        (c,) = shapes[0]
        return [(f"{layer_name}_{s}", (c,)) for s in ("w", "b", "m", "v")]
    cin, cout = shapes[0]
    return [(DENSE_FILES[0], (cout, cin)), (DENSE_FILES[1], (cout,))]


def _read_csv(path: Path, shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise ModelFormatError(f"{path}: missing weight file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: unreadable weight file ({exc})") from exc
    tokens = [t for t in text.replace("\r", ",").replace("\n", ",").split(",") if t.strip()]
    try:
        values = np.asarray([float(t) for t in tokens], dtype=np.float64)
    except ValueError as exc:
        raise ModelFormatError(f"{path}: not a CSV of numbers ({exc})") from exc
    expected = int(np.prod(shape))
    if values.size != expected:
        raise ModelFormatError(
            f"{path}: {values.size} values, expected {expected} for shape {shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ModelFormatError(f"{path}: contains NaN or infinite values")
    return values.reshape(shape)


def read_csv_weights(model: Any, weights_dir: Path) -> dict[str, list[npt.NDArray[np.float32]]]:
    """Read and check every CSV file; returns Keras-ordered arrays per layer."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise ConfigError(f"{weights_dir}: not a folder of nn4.small2 CSV weights")
    out: dict[str, list[npt.NDArray[np.float32]]] = {}
    for name in LAYER_NAMES:
        layer = model.get_layer(name)
        kind = _layer_kind(layer)
        arrays = [
            _read_csv(weights_dir / f"{stem}.csv", shape)
            for stem, shape in csv_files_for(model, name)
        ]
        if kind == "conv":
            arrays[0] = np.transpose(arrays[0], (2, 3, 1, 0))
        elif kind == "dense":
            arrays[0] = arrays[0].T
        if kind == "bn" and np.any(arrays[3] < 0):
            raise ModelFormatError(f"{weights_dir / (name + '_v.csv')}: negative variance")
        out[name] = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    return out


def load_csv_weights(model: Any, weights_dir: Path) -> None:
    """Fill ``model`` (from :func:`build_nn4_small2`) from the notebooks' CSV
    files in ``weights_dir``. All files are read and checked before any layer
    is changed, so a bad folder leaves the model as it was."""
    table = read_csv_weights(model, weights_dir)
    for name, arrays in table.items():
        model.get_layer(name).set_weights(arrays)
    log.info("nn4.small2: loaded %d layers from %s", len(table), weights_dir)


def save_csv_weights(model: Any, weights_dir: Path) -> None:
    """Write ``model``'s weights in the notebooks' CSV layout (one line per
    file, 9 significant digits: exact for float32): the inverse of
    :func:`load_csv_weights`."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    for name in LAYER_NAMES:
        layer = model.get_layer(name)
        kind = _layer_kind(layer)
        arrays = [np.asarray(w) for w in layer.get_weights()]
        if kind == "conv":
            arrays[0] = np.transpose(arrays[0], (3, 2, 0, 1))
        elif kind == "dense":
            arrays[0] = arrays[0].T
        for (stem, _), arr in zip(csv_files_for(model, name), arrays, strict=True):
            flat = np.asarray(arr, dtype=np.float32).ravel()
            (weights_dir / f"{stem}.csv").write_text(
                ",".join(f"{v:.9g}" for v in flat.tolist()) + "\n", encoding="ascii"
            )


def weights_digest(model: Any, weights_dir: Path, length: int = 12) -> str:
    """SHA-256 over the names and bytes of the CSV files the model uses."""
    digest = hashlib.sha256()
    for name in LAYER_NAMES:
        for stem, _ in csv_files_for(model, name):
            path = Path(weights_dir) / f"{stem}.csv"
            digest.update(stem.encode())
            try:
                digest.update(path.read_bytes())
            except OSError as exc:
                raise ModelFormatError(f"{path}: unreadable weight file ({exc})") from exc
    return digest.hexdigest()[:length]
