"""Open-set evaluation: what a face-only door does with a whole folder of people.

Pure numpy over encodings with person labels (rows of NaN are images
without a usable face). Two parts:

- :func:`all_pairs`: verification over *every* pair of images, genuine
  (same person) and impostor. The distances are computed in blocks
  (one matrix product each); the genuine distances are kept, and of the
  impostors only their count and the smallest ones, as many as the largest
  false-accept rate asked for needs (TAR at FAR uses the (k+1)-th smallest
  impostor distance, ``k = floor(far x impostors)``, as
  :func:`facegate.core.evaluation.threshold_at_far` does).
  A pair with an image without a face is never accepted.
- :func:`open_set`: identification as a door meets it. ``gallery_size``
  people drawn from those with more than ``templates`` photos are enrolled
  with ``templates`` photos each; *mated* probes are their other photos,
  *non-mated* probes every photo of the people never enrolled. Per probe
  the nearest enrolled person (minimum over their templates) and the
  runner-up. A probe is accepted when its nearest distance is under the
  threshold and the runner-up is at least ``margin`` further away; the
  false-positive identification rate (FPIR, "strangers let in") is the
  share of non-mated probes accepted, the detection-and-identification
  rate (DIR, "residents let in") the share of mated probes accepted *as
  themselves*. DIR at FPIR f uses the threshold that accepts at most
  ``floor(f x non-mated)`` strangers; ``rank1`` is the share of mated
  probes whose nearest person is right, whatever the distance.

Reports follow ``facegate evaluate``'s JSON conventions (``tar_at_far_1e-3``,
``dir_at_far_1e-2``...), with the number of impostor pairs or non-mated
probes behind each rate (its resolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "IdentificationScores",
    "OpenSetSplit",
    "PairSummary",
    "all_pairs",
    "dir_at_fpir",
    "draw_split",
    "far_key",
    "identification_scores",
    "open_set",
    "rate_at_threshold",
    "tar_at_far",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

DEFAULT_FARS = (1e-3, 1e-4, 1e-5)
DEFAULT_FPIRS = (1e-2, 1e-3)


def far_key(prefix: str, rate: float) -> str:
    """``far_key("tar_at_far", 1e-3) == "tar_at_far_1e-3"`` (evaluate's keys)."""
    mantissa, _, exponent = f"{rate:.0e}".partition("e")
    if mantissa == "1":
        return f"{prefix}_1e{int(exponent)}"
    return f"{prefix}_{rate:g}"


def _checked(encodings: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[F64, I64, Bools]:
    e = np.asarray(encodings, dtype=np.float64)
    lab = np.asarray(labels)
    if e.ndim != 2 or lab.shape != (e.shape[0],):
        raise ValueError(f"encodings {e.shape} and labels {lab.shape}: want (n, d) and (n,)")
    if lab.dtype.kind not in "iu":
        raise ValueError("labels must be integers (person indices)")
    valid: Bools = np.asarray(np.isfinite(e).all(axis=1), dtype=bool)
    return e, lab.astype(np.int64), valid


# --------------------------------------------------------------------------- all pairs


@dataclass(frozen=True)
class PairSummary:
    """Every pair of a folder: genuine distances in full, impostors by
    count and their smallest distances (``inf`` where an image had no face)."""

    genuine: F64
    """Sorted distances of every same-person pair."""
    impostors: int
    """How many different-person pairs there are."""
    impostor_smallest: F64
    """The smallest impostor distances, sorted (enough for ``max_far``)."""
    max_far: float

    def threshold_at_far(self, far: float) -> tuple[float, int]:
        """``(threshold, k)``: the (k+1)-th smallest impostor distance with
        ``k = floor(far x impostors)`` allowed false accepts (accepting
        strictly under it)."""
        if not 0.0 <= far <= self.max_far:
            raise ValueError(f"far {far} outside [0, {self.max_far}] kept by this summary")
        k = math.floor(far * self.impostors + 1e-9)
        if k >= self.impostor_smallest.size:
            return math.inf, k
        return float(self.impostor_smallest[k]), k


def all_pairs(
    encodings: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    max_far: float = max(DEFAULT_FARS),
    block: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> PairSummary:
    """Distances of all ``n (n - 1) / 2`` pairs, in blocks of ``block`` rows
    (``progress(rows)`` after each)."""
    e, lab, valid = _checked(encodings, labels)
    n = e.shape[0]
    same_total = int(sum(c * (c - 1) // 2 for c in np.bincount(lab).tolist())) if n else 0
    impostors = n * (n - 1) // 2 - same_total
    keep = math.floor(max_far * impostors + 1e-9) + 1
    x = np.where(valid[:, None], e, 0.0)
    sq = np.einsum("ij,ij->i", x, x)
    genuine: list[F64] = []
    smallest = np.empty(0, dtype=np.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        # rows start..stop against every later column (each pair once)
        g = x[start:stop] @ x[start:].T
        d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * g
        d = np.sqrt(np.maximum(d2, 0.0))
        bad = ~(valid[start:stop, None] & valid[None, start:])
        d[bad] = np.inf
        upper = np.arange(start, stop)[:, None] < np.arange(start, n)[None, :]
        same = (lab[start:stop, None] == lab[None, start:]) & upper
        genuine.append(d[same])
        diff = d[upper & ~same]
        if diff.size > keep:
            diff = np.partition(diff, keep - 1)[:keep]
        smallest = np.concatenate([smallest, diff])
        if smallest.size > keep:
            smallest = np.partition(smallest, keep - 1)[:keep]
        if progress is not None:
            progress(stop - start)
    gen = np.sort(np.concatenate(genuine)) if genuine else np.empty(0)
    return PairSummary(gen, impostors, np.sort(smallest), max_far)


def tar_at_far(summary: PairSummary, far: float) -> dict[str, float | int | None]:
    """TAR, threshold and the impostor pairs behind one FAR figure."""
    threshold, k = summary.threshold_at_far(far)
    tar = float((summary.genuine < threshold).mean()) if summary.genuine.size else None
    return {
        "tar": tar,
        "threshold": threshold if math.isfinite(threshold) else None,
        "false_accepts_allowed": k,
        "impostor_pairs": summary.impostors,
        "resolution": 1.0 / summary.impostors if summary.impostors else None,
        "meaningful": summary.impostors * far >= 10,
    }


# --------------------------------------------------------------------------- identification


@dataclass(frozen=True)
class OpenSetSplit:
    """One draw of the protocol (row indices into the encodings)."""

    gallery: tuple[I64, ...]
    """Template rows of each enrolled person."""
    gallery_labels: I64
    """The person label of each enrolled person."""
    mated: I64
    mated_person: I64
    """Index into ``gallery`` of each mated probe's own person."""
    non_mated: I64


def draw_split(
    labels: npt.ArrayLike,
    valid: npt.ArrayLike,
    gallery_size: int,
    rng: np.random.Generator,
    *,
    templates: int = 1,
) -> OpenSetSplit:
    """Enrol ``gallery_size`` random people among those with at least
    ``templates + 1`` photos whose first ``templates`` (in a random order of
    their photos with a face) become templates; ValueError when the folder
    has too few such people."""
    lab = np.asarray(labels, dtype=np.int64)
    ok = np.asarray(valid, dtype=bool)
    if templates < 1:
        raise ValueError("templates must be >= 1")
    photos = np.bincount(lab)
    with_face = np.bincount(lab[ok], minlength=photos.size)
    eligible = np.flatnonzero((photos >= templates + 1) & (with_face >= templates))
    if gallery_size > eligible.size:
        raise ValueError(
            f"gallery of {gallery_size}: only {eligible.size} people have "
            f"{templates + 1} or more photos"
        )
    chosen = np.sort(rng.choice(eligible, gallery_size, replace=False))
    index = {int(p): i for i, p in enumerate(chosen)}
    gallery: list[I64] = []
    mated: list[int] = []
    mated_person: list[int] = []
    for p in chosen.tolist():
        rows = np.flatnonzero(lab == p)
        with_f = rng.permutation(rows[ok[rows]])
        tmpl = np.sort(with_f[:templates])
        gallery.append(tmpl.astype(np.int64))
        rest = np.setdiff1d(rows, tmpl)
        mated.extend(rest.tolist())
        mated_person.extend([index[p]] * rest.size)
    non_mated = np.flatnonzero(~np.isin(lab, chosen))
    return OpenSetSplit(
        tuple(gallery),
        chosen.astype(np.int64),
        np.array(mated, dtype=np.int64),
        np.array(mated_person, dtype=np.int64),
        non_mated.astype(np.int64),
    )


@dataclass(frozen=True)
class IdentificationScores:
    """Per probe: nearest person (gallery index), its distance and the
    runner-up's (``inf`` for an image without a face or a 1-person gallery)."""

    mated_best: F64
    mated_second: F64
    mated_right: Bools
    non_mated_best: F64
    non_mated_second: F64


def _nearest_two(
    e: F64, valid: Bools, probes: I64, gallery: Sequence[I64], block: int = 1024
) -> tuple[F64, F64, I64]:
    """(best, second, best person) of each probe (min over each person's
    templates; every person has the same number of templates); a probe
    without a face has best ``inf`` and person -1."""
    m, people = probes.size, len(gallery)
    best = np.full(m, np.inf)
    second = np.full(m, np.inf)
    who = np.zeros(m, dtype=np.int64)
    if m == 0 or people == 0:
        return best, second, who
    per = gallery[0].size
    if any(g.size != per for g in gallery):
        raise ValueError("every enrolled person needs the same number of templates")
    # slot-major rows: first template of everyone, then the second...
    rows = np.stack(gallery, axis=1).reshape(-1)
    t = e[rows]
    t_sq = np.einsum("ij,ij->i", t, t)
    for a in range(0, m, block):
        idx = probes[a : a + block]
        p = np.where(valid[idx][:, None], e[idx], 0.0)
        p_sq = np.einsum("ij,ij->i", p, p)
        d2 = p_sq[:, None] + t_sq[None, :] - 2.0 * (p @ t.T)
        d = np.sqrt(np.maximum(d2, 0.0)).reshape(idx.size, per, people).min(axis=1)
        d[~valid[idx]] = np.inf
        if people == 1:
            best[a : a + block] = d[:, 0]
            who[a : a + block] = np.where(valid[idx], 0, -1)
            continue
        two = np.argpartition(d, 1, axis=1)[:, :2]
        vals = np.take_along_axis(d, two, axis=1)
        order = np.argsort(vals, axis=1, kind="stable")
        two = np.take_along_axis(two, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        best[a : a + block], second[a : a + block], who[a : a + block] = (
            vals[:, 0],
            vals[:, 1],
            np.where(valid[idx], two[:, 0], -1),  # no face: nobody, never right
        )
    return best, second, who


def identification_scores(
    encodings: npt.ArrayLike, labels: npt.ArrayLike, split: OpenSetSplit
) -> IdentificationScores:
    e, _, valid = _checked(encodings, labels)
    mb, ms, who = _nearest_two(e, valid, split.mated, split.gallery)
    nb, ns, _ = _nearest_two(e, valid, split.non_mated, split.gallery)
    return IdentificationScores(mb, ms, who == split.mated_person, nb, ns)


def _margin_ok(best: F64, second: F64, margin: float) -> Bools:
    """Runner-up at least ``margin`` behind (a probe without a face: never)."""
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(best), second - best, -np.inf)
    out: Bools = gap >= margin
    return out


def _accepted(best: F64, second: F64, threshold: float, margin: float) -> Bools:
    out: Bools = (best < threshold) & _margin_ok(best, second, margin)
    return out


def rate_at_threshold(
    scores: IdentificationScores, threshold: float, margin: float = 0.0
) -> tuple[float, float]:
    """``(fpir, dir)`` at a fixed threshold and margin."""
    fpir = _accepted(scores.non_mated_best, scores.non_mated_second, threshold, margin)
    found = _accepted(scores.mated_best, scores.mated_second, threshold, margin)
    f = float(fpir.mean()) if fpir.size else math.nan
    d = float((found & scores.mated_right).mean()) if found.size else math.nan
    return f, d


def dir_at_fpir(
    scores: IdentificationScores, fpir: float, margin: float = 0.0
) -> tuple[float, float, int]:
    """``(dir, threshold, strangers allowed)``: the threshold accepting at
    most ``floor(fpir x non-mated)`` non-mated probes (those failing the
    margin are never accepted, whatever the threshold)."""
    n = scores.non_mated_best.size
    if n == 0:
        raise ValueError("no non-mated probes: every person was enrolled")
    passing = _margin_ok(scores.non_mated_best, scores.non_mated_second, margin)
    candidates = np.sort(scores.non_mated_best[passing])
    k = math.floor(fpir * n + 1e-9)
    threshold = float(candidates[k]) if k < candidates.size else math.inf
    if not math.isfinite(threshold):
        finite = np.concatenate([scores.mated_best, scores.non_mated_best])
        finite = finite[np.isfinite(finite)]
        threshold = float(np.nextafter(finite.max(), np.inf)) if finite.size else 0.0
    _, d = rate_at_threshold(scores, threshold, margin)
    return d, threshold, k


def open_set(
    encodings: npt.ArrayLike,
    labels: npt.ArrayLike,
    gallery_size: int,
    *,
    templates: int = 1,
    draws: int = 1,
    seed: int = 0,
    fpirs: Sequence[float] = DEFAULT_FPIRS,
    threshold: float | None = None,
    margin: float = 0.0,
) -> dict[str, object]:
    """The open-set figures for one gallery size, averaged over ``draws``
    random galleries (``*_std``: their spread)."""
    e, lab, valid = _checked(encodings, labels)
    rng = np.random.default_rng(seed)
    per_draw: dict[str, list[float]] = {}
    counts = {"mated_probes": 0, "non_mated_probes": 0}
    for _ in range(draws):
        split = draw_split(lab, valid, gallery_size, rng, templates=templates)
        scores = identification_scores(e, lab, split)
        counts["mated_probes"] += int(split.mated.size)
        counts["non_mated_probes"] += int(split.non_mated.size)
        figures: dict[str, float] = {
            "rank1": float(scores.mated_right.mean()) if split.mated.size else math.nan
        }
        for f in fpirs:
            d, t, _ = dir_at_fpir(scores, f, margin)
            figures[far_key("dir_at_far", f)] = d
            figures[far_key("threshold_at_far", f)] = t
        if threshold is not None:
            fp, dr = rate_at_threshold(scores, threshold, margin)
            figures["fpir_at_threshold"] = fp
            figures["dir_at_threshold"] = dr
        for key, value in figures.items():
            per_draw.setdefault(key, []).append(value)
    doc: dict[str, object] = {
        "gallery_size": gallery_size,
        "templates": templates,
        "draws": draws,
        "margin": margin,
        "mated_probes_per_draw": counts["mated_probes"] / draws,
        "non_mated_probes_per_draw": counts["non_mated_probes"] / draws,
    }
    for key, values in per_draw.items():
        doc[key] = float(np.mean(values))
        if draws > 1:
            doc[f"{key}_std"] = float(np.std(values, ddof=1))
    if threshold is not None:
        doc["threshold"] = threshold
    for f in fpirs:
        strangers = counts["non_mated_probes"] / draws
        doc[far_key("non_mated_behind", f)] = strangers
        doc[far_key("meaningful", f)] = strangers * f >= 10
    return doc
