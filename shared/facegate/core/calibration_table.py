"""Deriving the engine's distance table from labelled encodings (pure).

Used by ``scripts/impostor_table.py`` (all of LFW View 1: the committed
:mod:`facegate.core.impostor_table`) and by ``bench/openset.py`` (one half
of the people, to check the thresholds on the other half). Over every pair
of photos (:func:`facegate.core.openset.all_pairs`):

- impostor pairs: the share closer than each distance, at rates 10^-9 ..
  0.5 in steps of 1/8 decade; a rate is measured where at least
  :data:`MIN_COUNT` pairs lie under it, below that the distance is
  extrapolated linearly in log10(rate) from the two measured decades above;
- genuine distances: from each photo of a person to the nearest of ``k``
  other photos of theirs (k = 1..4, people with k+1 photos or more), as 101
  quantiles.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.core.openset import PairSummary, all_pairs

__all__ = ["MIN_COUNT", "build_table", "genuine_rows", "impostor_rows"]

MIN_COUNT = 10
RATE_STEP = 0.125
LOWEST_LOG10 = -9.0
MAX_TEMPLATES = 4


def impostor_rows(summary: PairSummary) -> dict[str, Any]:
    """log10 rates and distances: measured, then extrapolated below."""
    grid = np.arange(LOWEST_LOG10, math.log10(0.5) + 1e-9, RATE_STEP)
    smallest = summary.impostor_smallest
    n = summary.impostors
    measured = [
        (float(r), float(smallest[math.floor(10.0**r * n)]))
        for r in grid
        if 10.0**r * n >= MIN_COUNT and math.floor(10.0**r * n) < smallest.size
    ]
    if len(measured) < 3:
        raise ValueError(f"{n} impostor pairs are too few for a table")
    lowest = measured[0][0]
    fit = [(r, d) for r, d in measured if r <= lowest + 2.0]
    slope, intercept = np.polyfit([r for r, _ in fit], [d for _, d in fit], 1)
    rows = [(float(r), float(slope * r + intercept)) for r in grid if r < lowest]
    rows += measured
    out_r: list[float] = []
    out_d: list[float] = []
    for r, d in rows:
        if out_d and d <= out_d[-1]:
            d = out_d[-1] + 1e-6  # strictly increasing (ties in the measured steps)
        out_r.append(round(r, 4))
        out_d.append(round(d, 6))
    return {
        "log10_rate": out_r,
        "distance": out_d,
        "measured_from": round(lowest, 4),
        "tail_slope_per_decade": round(float(slope), 5),
        "pairs": n,
    }


def genuine_rows(enc: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> dict[str, Any]:
    levels = np.linspace(0.0, 1.0, 101)
    by: dict[str, list[float]] = {}
    probes: dict[str, int] = {}
    for k in range(1, MAX_TEMPLATES + 1):
        found: list[float] = []
        for person in np.unique(labels):
            rows = np.flatnonzero(labels == person)
            if rows.size < k + 1:
                continue
            e = enc[rows]
            d = np.linalg.norm(e[:, None, :] - e[None, :, :], axis=2)
            for i in range(rows.size):
                others = [(i + j) % rows.size for j in range(1, k + 1)]
                found.append(float(d[i, others].min()))
        if not found:
            break
        by[str(k)] = [round(float(q), 6) for q in np.quantile(found, levels)]
        probes[str(k)] = len(found)
    return {"levels": [round(float(v), 4) for v in levels], "by_templates": by, "probes": probes}


def build_table(
    encodings: npt.ArrayLike, labels: npt.ArrayLike, *, encoder: str, source: str = ""
) -> dict[str, Any]:
    """The table of :class:`facegate.core.calibration.DistanceModel` from
    encodings (rows with a face only) and person labels."""
    enc = np.asarray(encodings, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.int64)
    ok = np.isfinite(enc).all(axis=1)
    enc, lab = enc[ok], lab[ok]
    summary = all_pairs(enc, lab, max_far=0.5)
    return {
        "encoder": encoder,
        "source": source
        or (
            f"{int(ok.sum())} photos with a face, {np.unique(lab).size} people, "
            f"{summary.impostors} impostor pairs, {summary.genuine.size} genuine pairs"
        ),
        "impostor": impostor_rows(summary),
        "genuine": genuine_rows(enc, lab),
    }
