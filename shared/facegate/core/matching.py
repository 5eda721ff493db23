"""The embedding math: distances, 1:1 verify, 1:K identify (pure numpy).

Two encodings are the same person when their Euclidean (L2) distance is
under a threshold. A person may have several templates (enrolment images);
the distance to a person is the smallest distance to any of them.

- :func:`distances`: Euclidean distances, computed as
  ``sqrt(max(|a|^2 + |b|^2 - 2 a.b, 0))`` with one matrix product per chunk
  of templates (memory stays bounded for million-row galleries). Entries
  whose squared distance is tiny compared with the norms (where that formula
  cancels badly) are recomputed from the differences in float64, so
  identical vectors give exactly 0, never a negative or NaN.
- :func:`verify`: is the probe the claimed person? (min over their templates)
- :class:`~facegate.core.gallery.Gallery` (in :mod:`facegate.core.gallery`):
  everyone's templates stacked in one float32 matrix, with the rows of each
  person. Galleries are immutable: :meth:`Gallery.add`,
  :meth:`Gallery.remove` and :meth:`Gallery.restrict` return new galleries.
- :func:`identify` / :func:`identify_many`: nearest person, with the
  threshold and an optional margin over the runner-up.
- :func:`reference_verify` / :func:`reference_identify` (in
  :mod:`facegate.core.matching_reference`): slow, loop-based versions, the
  oracles of the tests and of ``bench/identify.py``.

The input checks live in :mod:`facegate.core.match_inputs`, the result
records and the decision rule in :mod:`facegate.core.match_results`. Every
public name of those modules is importable from here.

Reasons (strings shared with ``messages.Reason`` where they overlap):
``granted``; ``below_threshold`` (the distance is not under the threshold:
the similarity is below what the threshold requires); ``ambiguous`` (the
runner-up person is closer than ``margin`` behind the best one);
``empty_gallery`` (nobody to compare with). When two people are exactly
equally near, which of them is reported as nearest is unspecified; with
``margin > 0`` such a tie is always ``ambiguous``.

Invalid input (wrong shapes, dimension mismatch, NaN or infinite values, no
templates) raises :class:`ValueError`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from facegate.core.gallery import Gallery
from facegate.core.match_inputs import (
    F32,
    FloatArray,
    _as_float_array,
    _as_matrix,
    _as_vector,
    _check_threshold,
)
from facegate.core.match_results import (
    REASONS,
    IdentifyResult,
    MatchReason,
    VerifyResult,
    _decide,
    _exact_min_distance,
)
from facegate.core.matching_reference import reference_identify, reference_verify

__all__ = [
    "REASONS",
    "Gallery",
    "IdentifyResult",
    "MatchReason",
    "VerifyResult",
    "distances",
    "identify",
    "identify_many",
    "l2_normalize",
    "reference_identify",
    "reference_verify",
    "verify",
]

_BLOCK_ELEMENTS = 1 << 22
"""Largest (probes x template rows) block computed at once: 16 MiB in float32."""

_REFINE = 1e-3
"""Squared distances under ``_REFINE * (|a|^2 + |b|^2)`` are recomputed exactly."""


# --------------------------------------------------------------------------- distances


def l2_normalize(x: npt.ArrayLike, *, eps: float = 1e-12) -> FloatArray:
    """Scale vectors (the last axis) to unit length; zero vectors raise."""
    arr = _as_float_array(x, "vectors")
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    if np.any(norms <= eps):
        raise ValueError("vectors: cannot normalise a zero vector")
    out: FloatArray = (arr / norms).astype(arr.dtype, copy=False)
    return out


def _sq_block(p: FloatArray, p_sq: FloatArray, t: FloatArray, t_sq: FloatArray) -> FloatArray:
    """Squared distances (m, r) between rows of ``p`` and ``t`` (same dtype)."""
    g: FloatArray = p @ t.T
    g *= -2.0
    g += p_sq[:, None]
    g += t_sq[None, :]
    np.maximum(g, 0.0, out=g)
    tol = _REFINE * (float(p_sq.max()) + float(t_sq.max()))
    small = g <= tol
    if small.any():
        i, j = np.nonzero(small)
        diff = p[i].astype(np.float64) - t[j].astype(np.float64)
        g[i, j] = np.einsum("ij,ij->i", diff, diff)
    return g


def _rows_per_block(m: int) -> int:
    return max(1024, _BLOCK_ELEMENTS // max(m, 1))


def distances(probe: npt.ArrayLike, templates: npt.ArrayLike) -> FloatArray:
    """Euclidean distances from a probe ``(d,)`` to templates ``(n, d)`` ->
    ``(n,)``, or from probes ``(m, d)`` -> ``(m, n)``.

    Computed in float32 when both inputs are float32, float64 otherwise.
    """
    single = np.ndim(probe) == 1
    t = _as_matrix(templates, "templates")
    p = _as_matrix(probe, "probe", dim=t.shape[1])
    dtype = np.result_type(p.dtype, t.dtype, np.float32)
    p = p.astype(dtype, copy=False)
    t = t.astype(dtype, copy=False)
    p_sq = np.einsum("ij,ij->i", p, p)
    t_sq = np.einsum("ij,ij->i", t, t)
    out = np.empty((p.shape[0], t.shape[0]), dtype=dtype)
    step = _rows_per_block(p.shape[0])
    for start in range(0, t.shape[0], step):
        stop = min(start + step, t.shape[0])
        out[:, start:stop] = _sq_block(p, p_sq, t[start:stop], t_sq[start:stop])
    np.sqrt(out, out=out)
    return out[0] if single else out


# --------------------------------------------------------------------------- verify


def verify(probe: npt.ArrayLike, templates: npt.ArrayLike, threshold: float) -> VerifyResult:
    """Is ``probe`` the person whose templates ``(k, d)`` (or one ``(d,)``)
    are given? The distance is the minimum over the templates."""
    _check_threshold(threshold)
    t = _as_matrix(templates, "templates")
    p = _as_vector(probe, "probe", dim=t.shape[1])
    d = distances(p.astype(np.float64), t.astype(np.float64))
    best = int(np.argmin(d))
    distance = float(d[best])
    matched = distance < threshold
    return VerifyResult(
        matched=matched,
        distance=distance,
        threshold=float(threshold),
        reason="granted" if matched else "below_threshold",
        template=best,
    )


# --------------------------------------------------------------------------- identify


def _top2(gallery: Gallery, probes: F32) -> npt.NDArray[np.int64]:
    """Per probe, the two nearest people (person indices, -1 where the
    gallery has fewer people), by float32 squared distances."""
    m = probes.shape[0]
    best_i = np.full((m, 2), -1, dtype=np.int64)
    best_d = np.full((m, 2), np.inf, dtype=np.float32)
    p_sq = np.einsum("ij,ij->i", probes, probes)
    step = _rows_per_block(m)
    t, t_sq = gallery.templates, gallery.sq_norms
    for row, c, members in gallery._buckets:
        k = members.size
        for a in range(0, k, step):
            b = min(a + step, k)
            if c * k <= step:
                # the whole bucket in one product; min over the slot axis
                sq = _sq_block(probes, p_sq, t[row : row + c * k], t_sq[row : row + c * k])
                mins = sq.reshape(m, c, k).min(axis=1)
            else:
                # min over each person's c templates: c contiguous slot blocks
                mins = _sq_block(probes, p_sq, t[row + a : row + b], t_sq[row + a : row + b])
                for s in range(1, c):
                    lo = row + s * k + a
                    sq = _sq_block(probes, p_sq, t[lo : lo + b - a], t_sq[lo : lo + b - a])
                    np.minimum(mins, sq, out=mins)
            if b - a > 2:
                part = np.argpartition(mins, 1, axis=1)[:, :2]
            else:
                part = np.broadcast_to(np.arange(b - a), (m, b - a))
            cand_d = np.concatenate([best_d, np.take_along_axis(mins, part, axis=1)], axis=1)
            cand_i = np.concatenate([best_i, members[a:b][part]], axis=1)
            order = np.argsort(cand_d, axis=1, kind="stable")[:, :2]
            best_d = np.take_along_axis(cand_d, order, axis=1)
            best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i


def identify_many(
    probes: npt.ArrayLike, gallery: Gallery, threshold: float, *, margin: float = 0.0
) -> list[IdentifyResult]:
    """:func:`identify` for probes ``(m, d)`` at once (one matrix product
    per block of the gallery)."""
    _check_threshold(threshold, margin)
    p = _as_matrix(probes, "probes", dim=gallery.dim)
    if len(gallery) == 0:
        return [_decide((), -1, math.inf, -1, math.inf, threshold, margin) for _ in range(len(p))]
    p32 = np.ascontiguousarray(p, dtype=np.float32)
    top_i = _top2(gallery, p32)
    results = []
    for k in range(p.shape[0]):
        # The float32 search picks the two people; their distances are then
        # recomputed exactly so that reported figures do not depend on it.
        found = [
            (_exact_min_distance(p[k], gallery.templates[gallery.rows_of(int(i))]), int(i))
            for i in top_i[k]
            if i >= 0
        ]
        found.sort()
        best_d, best = found[0][0], found[0][1]
        second_d, second = found[1] if len(found) > 1 else (math.inf, -1)
        results.append(_decide(gallery.people, best, best_d, second, second_d, threshold, margin))
    return results


def identify(
    probe: npt.ArrayLike, gallery: Gallery, threshold: float, *, margin: float = 0.0
) -> IdentifyResult:
    """Who is this? The nearest person (minimum over their templates);
    matched when that distance is under ``threshold`` and the runner-up
    person is at least ``margin`` further away."""
    p = _as_vector(probe, "probe", dim=gallery.dim)
    return identify_many(p[None, :], gallery, threshold, margin=margin)[0]
