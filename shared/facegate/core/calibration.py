"""Thresholds for a gallery, not for a pair: what an identify door promises.

A face-only (identify) door compares a stranger with every template of
every person it would let in, and with every frame of the stranger's
approach. The stranger is let in when *any* of those comparisons is under
the threshold, so the door's stranger acceptance grows with the gallery:

    n = frames x (templates of person 1 + ... + templates of person P)
    acceptance(t) = 1 - (1 - F(t)) ** n

where ``F(t)`` is the engine's false-accept rate for one pair of images at
threshold ``t`` (the share of impostor pairs closer than ``t``). The
threshold for a target acceptance per approach is the inverse:
``F(t) = 1 - (1 - target) ** (1 / n)``.

Counting every comparison as independent is what the data supports where
the thresholds live: on LFW View 1, at a pair rate of 1e-5 the minimum over
2 (3) photos of one person is under the threshold 2.0 (3.1) times as often
as one photo, i.e. fully additive; only at rates of 1e-3 and above do
photos of one person overlap (1.6x for 2), where the formula then
overestimates the acceptance, which errs on the side of shutting strangers
out. The check on held-out people is in BENCHMARKS.md.

Why a table measured once rather than the enrolled gallery itself: the
pair rates a door needs are tiny (1e-4 at 10 people, 1e-6 at 1,000 for
0.1% of strangers) and a gallery cannot resolve them (10 people give 45
pairs of people, 1,000 give half a million, a resolution of 2e-6 at best,
and the residents are not the strangers); the table is the same for every
matcher, so every matcher computes the same threshold, and recomputing it
costs nothing. What it cannot see is a population unlike LFW's (people who
resemble each other more): the check on held-out people in BENCHMARKS.md
shows the spread between populations of 1,550 people.

``F`` comes from :mod:`facegate.core.impostor_table`, measured on LFW View 1
with the engine's own encodings by ``scripts/impostor_table.py`` (every
impostor pair: 12.4 million; below a rate of about 1e-6, where fewer than
ten pairs are left, the table extrapolates the measured tail linearly in
``log10`` of the rate). The same table holds the genuine distances (the
minimum over 1-4 templates of one person), the fallback for resident
acceptance when the gallery itself has too few people with several
templates.

Everything here is a pure function of (templates per person, frames,
target) and the table, so a gallery that changes by one person (an enrol,
a revoke) gets its threshold again in microseconds, and every matcher
computes the same one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_STRANGER_RATE",
    "MIN_RESIDENT_RATE",
    "DistanceModel",
    "comparisons",
    "default_model",
    "identify_threshold",
    "per_comparison_rate",
    "resident_acceptance_from_templates",
    "stranger_acceptance",
]

F64 = npt.NDArray[np.float64]

DEFAULT_STRANGER_RATE = 1e-3
"""Default target: strangers let in per approach at an identify door."""

DEFAULT_MARGIN = 0.1
"""Default identify margin (best person vs the runner-up), chosen by
measurement (``bench/openset.py`` part (d), BENCHMARKS.md): at the
calibrated thresholds it halves the strangers let in at 100 and 1,000
enrolled for 0.7 point of residents (nothing changes at 10), a safety
factor against a building whose people resemble each other more than
LFW's."""

MIN_RESIDENT_RATE = 0.9
"""Below this estimated resident acceptance a door should be badge + face."""

MIN_GALLERY_PROBES = 20
"""Leave-one-out probes needed before the gallery's own genuine distances
are trusted over the table's."""


@dataclass(frozen=True)
class DistanceModel:
    """The engine's distance distributions, from a measured table.

    ``log10_rate[i]`` is the log10 of the share of impostor pairs closer
    than ``distance[i]`` (increasing); ``genuine[k]`` the sorted quantiles
    (at ``genuine_levels``) of the distance from a photo to the nearest of
    ``k`` other photos of the same person.
    """

    encoder: str
    log10_rate: F64
    distance: F64
    measured_from: float
    """The smallest log10 rate measured (below it: extrapolated)."""
    genuine_levels: F64
    genuine: Mapping[int, F64]
    source: str = ""

    def __post_init__(self) -> None:
        if self.log10_rate.shape != self.distance.shape or self.distance.size < 2:
            raise ValueError("impostor table: rates and distances must pair up")
        if np.any(np.diff(self.distance) <= 0) or np.any(np.diff(self.log10_rate) <= 0):
            raise ValueError("impostor table must increase")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> DistanceModel:
        imp = table["impostor"]
        gen = table["genuine"]
        return cls(
            encoder=str(table["encoder"]),
            log10_rate=np.asarray(imp["log10_rate"], dtype=np.float64),
            distance=np.asarray(imp["distance"], dtype=np.float64),
            measured_from=float(imp["measured_from"]),
            genuine_levels=np.asarray(gen["levels"], dtype=np.float64),
            genuine={
                int(k): np.asarray(v, dtype=np.float64) for k, v in gen["by_templates"].items()
            },
            source=str(table.get("source", "")),
        )

    def pair_rate(self, threshold: float) -> float:
        """Share of impostor pairs closer than ``threshold`` (``F(t)``)."""
        if threshold <= 0.0:
            return 0.0
        x, y = self.distance, self.log10_rate
        if threshold <= x[0]:
            slope = (y[1] - y[0]) / (x[1] - x[0])
            return float(10.0 ** (y[0] + slope * (threshold - x[0])))
        if threshold >= x[-1]:
            return float(min(1.0, 10.0 ** y[-1]))
        return float(10.0 ** np.interp(threshold, x, y))

    def pair_threshold(self, rate: float) -> float:
        """The threshold whose pair false-accept rate is ``rate``."""
        if not 0.0 < rate < 1.0:
            raise ValueError(f"pair rate must be in (0, 1), got {rate}")
        x, y = self.distance, self.log10_rate
        r = math.log10(rate)
        if r <= y[0]:
            slope = (x[1] - x[0]) / (y[1] - y[0])
            return float(max(0.0, x[0] + slope * (r - y[0])))
        if r >= y[-1]:
            return float(x[-1])
        return float(np.interp(r, y, x))

    def extrapolated(self, threshold: float) -> bool:
        """Whether ``F(threshold)`` lies below what the table measured."""
        return math.log10(max(self.pair_rate(threshold), 1e-300)) < self.measured_from

    def resident_rate(self, threshold: float, templates: int) -> float:
        """Share of a resident's photos closer than ``threshold`` to the
        nearest of their ``templates`` enrolled ones (the table's largest
        template count stands in for more)."""
        if not self.genuine:
            raise ValueError("the table has no genuine distances")
        k = min(max(1, templates), max(self.genuine))
        quantiles = self.genuine[k]
        if threshold <= quantiles[0]:
            return float(self.genuine_levels[0]) if threshold == quantiles[0] else 0.0
        if threshold >= quantiles[-1]:
            return 1.0
        return float(np.interp(threshold, quantiles, self.genuine_levels))


@lru_cache(maxsize=1)
def default_model() -> DistanceModel:
    """The table measured for the engine's default configuration."""
    from facegate.core.impostor_table import TABLE

    return DistanceModel.from_table(TABLE)


def comparisons(templates: int | Sequence[int], frames: int = 1, people: int | None = None) -> int:
    """How many pair comparisons a stranger's approach gets: ``frames x``
    the total of ``templates`` (one count per person, or one count for
    each of ``people``)."""
    if frames < 1:
        raise ValueError("frames must be >= 1")
    if isinstance(templates, int):
        if people is None:
            raise ValueError("give people= with a single template count")
        total = templates * people
    else:
        counts = list(templates)
        if any(c < 0 for c in counts):
            raise ValueError("template counts must be >= 0")
        total = sum(counts)
    return frames * total


def per_comparison_rate(target: float, n: int) -> float:
    """The pair rate ``p`` with ``1 - (1 - p) ** n == target``."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target rate must be in (0, 1), got {target}")
    if n < 1:
        return target
    return -math.expm1(math.log1p(-target) / n)


def identify_threshold(
    templates: int | Sequence[int],
    *,
    frames: int = 1,
    target: float = DEFAULT_STRANGER_RATE,
    people: int | None = None,
    model: DistanceModel | None = None,
) -> float:
    """The threshold that lets in at most ``target`` of strangers per
    approach of ``frames`` frames at a door whose gallery holds
    ``templates`` (per person). An empty gallery gets the 1-comparison
    threshold (it denies everyone anyway)."""
    model = model or default_model()
    n = max(1, comparisons(templates, frames, people))
    return model.pair_threshold(per_comparison_rate(target, n))


def stranger_acceptance(
    threshold: float,
    templates: int | Sequence[int],
    *,
    frames: int = 1,
    people: int | None = None,
    model: DistanceModel | None = None,
) -> float:
    """Estimated share of strangers' approaches let in at ``threshold``."""
    model = model or default_model()
    n = comparisons(templates, frames, people)
    p = model.pair_rate(threshold)
    if p >= 1.0:
        return 1.0 if n else 0.0
    return -math.expm1(n * math.log1p(-p))


def resident_acceptance_from_templates(
    people: Mapping[str, npt.ArrayLike], threshold: float
) -> tuple[float, int] | None:
    """Leave-one-out over the residents with several templates: each
    template against the nearest of the person's others; ``(share under
    threshold, probes)``, or ``None`` with fewer than
    :data:`MIN_GALLERY_PROBES` probes."""
    hits = probes = 0
    for rows in people.values():
        t = np.asarray(rows, dtype=np.float64)
        if t.ndim != 2 or t.shape[0] < 2:
            continue
        sq = np.einsum("ij,ij->i", t, t)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (t @ t.T), 0.0))
        np.fill_diagonal(d, np.inf)
        nearest = d.min(axis=1)
        hits += int((nearest < threshold).sum())
        probes += t.shape[0]
    if probes < MIN_GALLERY_PROBES:
        return None
    return hits / probes, probes
