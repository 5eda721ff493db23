"""Accuracy on labelled pairs (LFW's protocol) and threshold calibration.

Pure numpy; the distances come from anywhere (``facegate.engine.folders.
pair_distances`` for real images).

Pair files (LFW's layouts; fields separated by tabs or spaces):

- ``pairs.txt`` (View 2): first line ``<folds> <n>``, then per fold ``n``
  matched lines and ``n`` mismatched lines.
- ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (View 1): first line ``N``,
  then ``N`` matched and ``N`` mismatched lines.

A matched line is ``name i j``, a mismatched one ``name1 i name2 j``; image
``i`` of ``name`` is ``<images>/<name>/<name>_<iiii>.jpg``.

Decisions are "same person" when ``distance < threshold``. A pair whose
distance is not finite (an image without a usable face) is counted as a
wrong answer whatever its label: the system gave no answer for it. For
TAR/FAR such a pair is never accepted (it is a false reject when matched
and not a false accept when mismatched), which is what a door does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError

__all__ = [
    "FoldResult",
    "Pair",
    "PairSet",
    "Roc",
    "accuracy",
    "best_threshold",
    "cross_validate",
    "image_path",
    "missing_images",
    "read_pairs",
    "roc",
    "stratified_folds",
    "tar_at_far",
    "threshold_at_far",
    "train_test",
]

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------- pair files


@dataclass(frozen=True)
class Pair:
    left: Path
    right: Path
    same: bool
    line: int
    """Line number in the pairs file (1-based), for error messages."""


@dataclass(frozen=True)
class PairSet:
    """The pairs of one file; ``fold[i]`` is pair i's fold (View 2) or all
    zeros (View 1, one set)."""

    source: Path
    pairs: tuple[Pair, ...]
    fold: npt.NDArray[np.int64]
    folds: int

    @property
    def same(self) -> Bools:
        return np.array([p.same for p in self.pairs], dtype=bool)

    def __len__(self) -> int:
        return len(self.pairs)

    def images(self) -> list[Path]:
        return sorted({path for p in self.pairs for path in (p.left, p.right)})


def image_path(images: Path, name: str, index: int) -> Path:
    return images / name / f"{name}_{index:04d}.jpg"


def _positive_int(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{where}: {value} must be at least 1")
    return value


def _parse_pair(fields: list[str], same: bool, images: Path, where: str, line: int) -> Pair:
    if same:
        if len(fields) != 3:
            raise ConfigError(
                f"{where}: expected a matched pair 'name i j' (3 fields), got {len(fields)}"
            )
        name, i, j = fields
        return Pair(
            image_path(images, name, _positive_int(i, where)),
            image_path(images, name, _positive_int(j, where)),
            True,
            line,
        )
    if len(fields) != 4:
        raise ConfigError(
            f"{where}: expected a mismatched pair 'name1 i name2 j' (4 fields), got {len(fields)}"
        )
    name1, i, name2, j = fields
    return Pair(
        image_path(images, name1, _positive_int(i, where)),
        image_path(images, name2, _positive_int(j, where)),
        False,
        line,
    )


def read_pairs(path: Path, images: Path) -> PairSet:
    """Parse an LFW pairs file (either layout). Malformed content raises
    :class:`~facegate.core.errors.ConfigError` naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such pairs file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read pairs file ({exc})") from exc
    lines = [(n, raw.split()) for n, raw in enumerate(text.splitlines(), start=1)]
    lines = [(n, fields) for n, fields in lines if fields]
    if not lines:
        raise ConfigError(f"{path}: empty pairs file")
    head_line, head = lines[0]
    where = f"{path}:{head_line}"
    if len(head) == 2:
        folds, per_kind = (_positive_int(v, where) for v in head)
    elif len(head) == 1:
        folds, per_kind = 1, _positive_int(head[0], where)
    else:
        raise ConfigError(
            f"{where}: expected a header '<pairs per kind>' or '<folds> <pairs per kind>'"
        )
    body = lines[1:]
    expected = folds * 2 * per_kind
    if len(body) != expected:
        raise ConfigError(
            f"{path}: the header promises {expected} pairs "
            f"({folds} fold(s) x {per_kind} matched + {per_kind} mismatched), "
            f"found {len(body)} lines"
        )
    pairs: list[Pair] = []
    fold = np.repeat(np.arange(folds, dtype=np.int64), 2 * per_kind)
    for k, (n, fields) in enumerate(body):
        same = (k % (2 * per_kind)) < per_kind
        pairs.append(_parse_pair(fields, same, images, f"{path}:{n}", n))
    return PairSet(path, tuple(pairs), fold, folds)


def missing_images(pairs: Sequence[Pair]) -> list[tuple[Pair, Path]]:
    """The pairs whose image files do not exist (first missing image each)."""
    out: list[tuple[Pair, Path]] = []
    seen: dict[Path, bool] = {}
    for pair in pairs:
        for path in (pair.left, pair.right):
            if path not in seen:
                seen[path] = path.is_file()
            if not seen[path]:
                out.append((pair, path))
                break
    return out


# --------------------------------------------------------------------------- metrics


def _check(distances: npt.ArrayLike, same: npt.ArrayLike) -> tuple[F64, Bools]:
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same)
    if d.ndim != 1 or s.shape != d.shape:
        raise ValueError(f"distances {d.shape} and labels {s.shape} must be equal-length vectors")
    if s.dtype != np.bool_:
        raise ValueError(f"labels must be booleans, got {s.dtype}")
    if d.size == 0:
        raise ValueError("no pairs")
    if np.isnan(d).any() or (d < 0).any():
        raise ValueError("distances must be >= 0 (inf for pairs without a face), not NaN")
    return d, s


def accuracy(distances: npt.ArrayLike, same: npt.ArrayLike, threshold: float) -> float:
    """Fraction of pairs answered right with ``distance < threshold`` as
    "same"; pairs at a non-finite distance count as wrong."""
    d, s = _check(distances, same)
    right = ((d < threshold) == s) & np.isfinite(d)
    return float(right.mean())


def best_threshold(distances: npt.ArrayLike, same: npt.ArrayLike) -> tuple[float, float]:
    """The accuracy-maximising threshold and its accuracy.

    Candidates are the midpoints between consecutive distinct finite
    distances (plus one under the smallest and one over the largest); on a
    tie the smallest threshold wins (the fewest false accepts).
    """
    d, s = _check(distances, same)
    finite = np.isfinite(d)
    fd, fs = d[finite], s[finite]
    n = d.size
    if fd.size == 0:
        return 0.0, 0.0
    order = np.argsort(fd, kind="stable")
    sd, ss = fd[order], fs[order]
    # Accepting the first k sorted pairs: right = same among them + different after.
    same_before = np.concatenate([[0], np.cumsum(ss)])
    diff_after = np.concatenate([[0], np.cumsum(~ss)])
    diff_after = diff_after[-1] - diff_after
    right = same_before + diff_after  # index k = 0..len(sd)
    # Only cut between distinct values (or at the ends).
    valid = np.ones(sd.size + 1, dtype=bool)
    valid[1:-1] = sd[1:] > sd[:-1]
    right = np.where(valid, right, -1)
    k = int(np.argmax(right))
    if k == 0:
        threshold = float(sd[0]) / 2.0
    elif k == sd.size:
        threshold = float(sd[-1]) + max(float(sd[-1]) * 1e-3, 1e-6)
    else:
        threshold = float(sd[k - 1] + sd[k]) / 2.0
    return threshold, float(right[k]) / n


@dataclass(frozen=True)
class FoldResult:
    """Accuracy per fold, with the threshold each fold was judged at."""

    accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Sample standard deviation over the folds (0 for one fold)."""
        if len(self.accuracies) < 2:
            return 0.0
        return float(np.std(self.accuracies, ddof=1))


def stratified_folds(same: npt.ArrayLike, folds: int = 10) -> npt.NDArray[np.int64]:
    """Deterministic fold numbers dealing matched and mismatched pairs out
    in turn (pair files list all matched pairs first)."""
    s = np.asarray(same, dtype=bool)
    out = np.empty(s.size, dtype=np.int64)
    for label in (True, False):
        idx = np.flatnonzero(s == label)
        out[idx] = np.arange(idx.size) % folds
    return out


def cross_validate(
    distances: npt.ArrayLike, same: npt.ArrayLike, fold: npt.ArrayLike
) -> FoldResult:
    """LFW's protocol: for each fold, the threshold chosen on the other
    folds, the accuracy on this one."""
    d, s = _check(distances, same)
    f = np.asarray(fold)
    if f.shape != d.shape:
        raise ValueError("one fold number per pair")
    labels = np.unique(f)
    if labels.size < 2:
        raise ValueError("cross-validation needs at least two folds")
    accs, thresholds = [], []
    for k in labels:
        test = f == k
        t, _ = best_threshold(d[~test], s[~test])
        accs.append(accuracy(d[test], s[test], t))
        thresholds.append(t)
    return FoldResult(tuple(accs), tuple(thresholds))


def train_test(
    train_distances: npt.ArrayLike,
    train_same: npt.ArrayLike,
    test_distances: npt.ArrayLike,
    test_same: npt.ArrayLike,
    *,
    subsets: int = 10,
) -> tuple[float, FoldResult]:
    """View 1's protocol: the threshold chosen on the training pairs, the
    accuracy on the test pairs. Also the accuracy on ``subsets`` stratified
    subsets of the test pairs at that threshold (for a spread figure)."""
    threshold, _ = best_threshold(train_distances, train_same)
    d, s = _check(test_distances, test_same)
    fold = stratified_folds(s, subsets)
    accs = tuple(accuracy(d[fold == k], s[fold == k], threshold) for k in np.unique(fold))
    return threshold, FoldResult(accs, (threshold,) * len(accs))


# --------------------------------------------------------------------------- ROC, calibration


@dataclass(frozen=True)
class Roc:
    """True-accept and false-accept rates when accepting ``distance <
    thresholds[i]``, for every threshold where either rate changes."""

    thresholds: F64
    tar: F64
    far: F64

    @property
    def frr(self) -> F64:
        out: F64 = 1.0 - self.tar
        return out


def roc(distances: npt.ArrayLike, same: npt.ArrayLike) -> Roc:
    d, s = _check(distances, same)
    n_same, n_diff = int(s.sum()), int((~s).sum())
    if n_same == 0 or n_diff == 0:
        raise ValueError("a ROC needs both matched and mismatched pairs")
    finite = np.unique(d[np.isfinite(d)])
    # Thresholds just above each distinct distance, and 0 (accept nothing).
    cuts = np.concatenate([[0.0], np.nextafter(finite, np.inf)])
    same_sorted = np.sort(d[s])
    diff_sorted = np.sort(d[~s])
    tar = np.searchsorted(same_sorted, cuts, side="left") / n_same
    far = np.searchsorted(diff_sorted, cuts, side="left") / n_diff
    return Roc(cuts, tar.astype(np.float64), far.astype(np.float64))


def threshold_at_far(distances: npt.ArrayLike, same: npt.ArrayLike, far: float) -> float:
    """The largest threshold whose false-accept rate on the mismatched pairs
    is at most ``far``: with ``k = floor(far * mismatched)`` allowed false
    accepts, the (k+1)-th smallest mismatched distance (accepting strictly
    under it). The achievable resolution is ``1 / mismatched``."""
    if not (0.0 <= far <= 1.0):
        raise ValueError(f"far must be within [0, 1], got {far}")
    d, s = _check(distances, same)
    diff = np.sort(d[~s])
    if diff.size == 0:
        raise ValueError("calibration needs mismatched pairs")
    k = math.floor(far * diff.size + 1e-9)
    if k >= diff.size or not math.isfinite(diff[k]):
        top = d[np.isfinite(d)]
        return float(np.nextafter(top.max(), np.inf)) if top.size else 0.0
    return float(diff[k])


def tar_at_far(distances: npt.ArrayLike, same: npt.ArrayLike, far: float) -> tuple[float, float]:
    """(TAR, threshold) at the threshold :func:`threshold_at_far` picks."""
    d, s = _check(distances, same)
    if not s.any():
        raise ValueError("TAR needs matched pairs")
    t = threshold_at_far(d, s, far)
    return float((d[s] < t).mean()), t
