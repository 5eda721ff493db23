"""Slow, loop-based versions of :func:`~facegate.core.matching.verify` and
:func:`~facegate.core.matching.identify`: the oracles of the tests and of
``bench/identify.py`` (re-exported by :mod:`facegate.core.matching`).

They share the input checks, the result records and the decision rule with
the fast versions, not the search.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from facegate.core.gallery import Gallery
from facegate.core.match_inputs import _as_matrix, _as_vector, _check_threshold
from facegate.core.match_results import IdentifyResult, VerifyResult, _decide, _exact_min_distance

__all__ = ["reference_identify", "reference_verify"]


def reference_verify(
    probe: npt.ArrayLike, templates: npt.ArrayLike, threshold: float
) -> VerifyResult:
    """:func:`verify` written as plain loops (test oracle)."""
    _check_threshold(threshold)
    rows = [[float(v) for v in row] for row in _as_matrix(templates, "templates")]
    vec = [float(v) for v in _as_vector(probe, "probe", dim=len(rows[0]))]
    best, best_d = -1, math.inf
    for k, row in enumerate(rows):
        d = math.sqrt(sum((a - b) ** 2 for a, b in zip(vec, row, strict=True)))
        if d < best_d:
            best, best_d = k, d
    matched = best_d < threshold
    return VerifyResult(
        matched, best_d, float(threshold), "granted" if matched else "below_threshold", best
    )


def reference_identify(
    probe: npt.ArrayLike, gallery: Gallery, threshold: float, *, margin: float = 0.0
) -> IdentifyResult:
    """:func:`identify` written as a loop over people (test oracle; float64;
    on equal distances the person first in the gallery wins)."""
    _check_threshold(threshold, margin)
    p = _as_vector(probe, "probe", dim=gallery.dim).astype(np.float64)
    per_person: list[float] = []
    for i in range(len(gallery.people)):
        per_person.append(_exact_min_distance(p, gallery.templates[gallery.rows_of(i)]))
    best, second = -1, -1
    for i, d in enumerate(per_person):
        if best < 0 or d < per_person[best]:
            best, second = i, best
        elif second < 0 or d < per_person[second]:
            second = i
    best_d = per_person[best] if best >= 0 else math.inf
    second_d = per_person[second] if second >= 0 else math.inf
    return _decide(gallery.people, best, best_d, second, second_d, threshold, margin)
