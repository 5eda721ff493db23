"""Input checks of the embedding math, shared by :mod:`facegate.core.matching`,
:mod:`facegate.core.gallery` and :mod:`facegate.core.matching_reference`.

Owns the array type aliases and the validation every public function of
those modules applies first: real, finite, non-empty numbers of the right
shape and dimension (:class:`ValueError` otherwise), and a finite,
non-negative threshold and margin.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["F32", "F64", "FloatArray"]

FloatArray = npt.NDArray[np.floating]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _as_float_array(x: npt.ArrayLike, what: str) -> FloatArray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise ValueError(f"{what}: expected real numbers, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{what}: empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: contains NaN or infinite values")
    return arr


def _as_vector(x: npt.ArrayLike, what: str, dim: int | None = None) -> FloatArray:
    arr = _as_float_array(x, what)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a vector (d,), got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{what}: dimension {arr.shape[0]} does not match {dim}")
    return arr


def _as_matrix(x: npt.ArrayLike, what: str, dim: int | None = None) -> FloatArray:
    """A (n, d) matrix; a single (d,) vector is taken as one row."""
    arr = _as_float_array(x, what)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected shape (n, d), got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{what}: dimension {arr.shape[1]} does not match {dim}")
    return arr


def _check_threshold(threshold: float, margin: float = 0.0) -> None:
    if not (math.isfinite(threshold) and threshold >= 0.0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
