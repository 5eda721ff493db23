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
- :class:`Gallery`: everyone's templates stacked in one float32 matrix,
  person by person, with the row offsets of each person. Galleries are
  immutable: :meth:`Gallery.add`, :meth:`Gallery.remove` and
  :meth:`Gallery.restrict` return new galleries.
- :func:`identify` / :func:`identify_many`: nearest person, with the
  threshold and an optional margin over the runner-up.
- :func:`reference_verify` / :func:`reference_identify`: slow, loop-based
  versions, the oracles of the tests and of ``bench/identify.py``.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

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

MatchReason = Literal["granted", "below_threshold", "ambiguous", "empty_gallery"]
REASONS: tuple[MatchReason, ...] = ("granted", "below_threshold", "ambiguous", "empty_gallery")

FloatArray = npt.NDArray[np.floating]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_BLOCK_ELEMENTS = 1 << 22
"""Largest (probes x template rows) block computed at once: 16 MiB in float32."""

_REFINE = 1e-3
"""Squared distances under ``_REFINE * (|a|^2 + |b|^2)`` are recomputed exactly."""


# --------------------------------------------------------------------------- validation


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


def _exact_min_distance(probe: FloatArray, templates: FloatArray) -> float:
    diff = templates.astype(np.float64) - probe.astype(np.float64)
    return float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyResult:
    """1:1 answer: ``matched`` when ``distance < threshold``."""

    matched: bool
    distance: float
    threshold: float
    reason: MatchReason
    template: int
    """Index of the nearest template of the claimed person."""


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


# --------------------------------------------------------------------------- gallery


class Gallery:
    """Templates of many people in one float32 matrix (immutable).

    ``people[i]`` owns the rows ``rows_of(i)`` of ``templates``;
    ``owner[row]`` is the person index of a row. Rows are laid out for
    search, not person by person: people with the same number ``c`` of
    templates form a bucket stored "slot-major" (first the first template of
    each of them, then the second, ...), so that the minimum over a person's
    templates is an element-wise minimum of ``c`` contiguous blocks rather
    than a segmented reduction. Build with :meth:`from_mapping` or
    :meth:`empty`; :meth:`add`, :meth:`remove` and :meth:`restrict` return
    new galleries.
    """

    __slots__ = (
        "_buckets",
        "_count",
        "_index",
        "_pos",
        "_start",
        "_stride",
        "owner",
        "people",
        "sq_norms",
        "templates",
    )

    people: tuple[str, ...]
    templates: F32
    sq_norms: F32
    owner: npt.NDArray[np.int32]
    _index: dict[str, int]
    _count: npt.NDArray[np.int64]
    _start: npt.NDArray[np.int64]
    _stride: npt.NDArray[np.int64]
    _pos: npt.NDArray[np.int64]
    _buckets: tuple[tuple[int, int, npt.NDArray[np.int64]], ...]

    def __init__(self, people: Sequence[str], counts: npt.ArrayLike, person_major: F32) -> None:
        """Private: use :meth:`from_mapping`. ``person_major`` holds each
        person's ``counts[i]`` templates one person after the other."""
        people = tuple(people)
        n_templates = np.asarray(counts, dtype=np.int64)
        if len(set(people)) != len(people):
            raise ValueError("a person appears twice in the gallery")
        if n_templates.shape != (len(people),) or (n_templates < 1).any():
            raise ValueError("every person needs at least one template")
        if person_major.ndim != 2 or person_major.shape[0] != int(n_templates.sum()):
            raise ValueError(f"{int(n_templates.sum())} template rows expected")
        dim = person_major.shape[1]
        offsets = np.zeros(len(people) + 1, dtype=np.int64)
        np.cumsum(n_templates, out=offsets[1:])
        templates = np.empty((int(offsets[-1]), dim), dtype=np.float32)
        owner = np.empty(int(offsets[-1]), dtype=np.int32)
        start = np.empty(len(people), dtype=np.int64)
        stride = np.empty(len(people), dtype=np.int64)
        pos = np.empty(len(people), dtype=np.int64)
        buckets = []
        row = 0
        for c in np.unique(n_templates).tolist():
            members = np.flatnonzero(n_templates == c)
            k = members.size
            for s in range(c):
                templates[row + s * k : row + (s + 1) * k] = person_major[offsets[members] + s]
                owner[row + s * k : row + (s + 1) * k] = members
            start[members] = row
            stride[members] = k
            pos[members] = np.arange(k)
            buckets.append((row, c, members))
            row += c * k
        self.people = people
        self.templates = templates
        self.sq_norms = np.einsum("ij,ij->i", templates, templates)
        self.owner = owner
        self._index = {name: i for i, name in enumerate(people)}
        self._count = n_templates
        self._start, self._stride, self._pos = start, stride, pos
        self._buckets = tuple(buckets)
        for array in (self.templates, self.sq_norms, self.owner):
            array.setflags(write=False)

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError(f"Gallery is immutable: cannot set {name}")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Gallery(people={len(self)}, templates={self.template_count}, dim={self.dim})"

    @classmethod
    def empty(cls, dim: int = 128) -> Gallery:
        return cls((), np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32))

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, npt.ArrayLike], *, dim: int | None = None
    ) -> Gallery:
        """``{person: templates (k, d) or (d,)}`` -> gallery (people in the
        mapping's order). Every person needs at least one template."""
        names: list[str] = []
        blocks: list[FloatArray] = []
        for name, value in mapping.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"person names must be non-empty strings, got {name!r}")
            block = _as_matrix(value, f"templates of {name!r}", dim=dim)
            dim = block.shape[1]
            names.append(name)
            blocks.append(block)
        if not blocks:
            return cls.empty(dim or 128)
        counts = [b.shape[0] for b in blocks]
        return cls(names, counts, np.concatenate(blocks, axis=0).astype(np.float32, copy=False))

    def __len__(self) -> int:
        """Number of people."""
        return len(self.people)

    def __contains__(self, person: object) -> bool:
        return person in self._index

    @property
    def dim(self) -> int:
        return int(self.templates.shape[1])

    @property
    def template_count(self) -> int:
        return int(self.templates.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the gallery's arrays."""
        arrays = (self.templates, self.sq_norms, self.owner, self._count, self._start)
        return sum(a.nbytes for a in arrays) + self._stride.nbytes + self._pos.nbytes

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        """Templates per person."""
        return self._count.copy()

    def rows_of(self, i: int) -> npt.NDArray[np.int64]:
        """Row numbers (in ``templates``) of person index ``i``, in enrolment order."""
        slots = np.arange(int(self._count[i]), dtype=np.int64)
        rows: npt.NDArray[np.int64] = self._start[i] + slots * self._stride[i] + self._pos[i]
        return rows

    def templates_of(self, person: str) -> F32:
        """A copy of ``person``'s templates, in enrolment order."""
        i = self._index.get(person)
        if i is None:
            raise KeyError(person)
        return self.templates[self.rows_of(i)]

    def _person_major(self) -> tuple[npt.NDArray[np.int64], F32]:
        counts = self.counts
        offsets = np.concatenate([[0], np.cumsum(counts)])
        slot = np.arange(self.template_count) - np.repeat(offsets[:-1], counts)
        rows = np.repeat(self._start + self._pos, counts) + slot * np.repeat(self._stride, counts)
        return counts, self.templates[rows]

    def add(self, person: str, templates: npt.ArrayLike) -> Gallery:
        """A new gallery with ``person``'s templates added (after any
        templates they already have)."""
        if not isinstance(person, str) or not person:
            raise ValueError(f"person names must be non-empty strings, got {person!r}")
        block = _as_matrix(templates, f"templates of {person!r}", dim=self.dim).astype(np.float32)
        counts, major = self._person_major()
        i = self._index.get(person)
        if i is None:
            return Gallery(
                (*self.people, person),
                np.append(counts, block.shape[0]),
                np.concatenate([major, block]),
            )
        at = int(counts[: i + 1].sum())
        counts[i] += block.shape[0]
        return Gallery(self.people, counts, np.concatenate([major[:at], block, major[at:]]))

    def remove(self, person: str) -> Gallery:
        """A new gallery without ``person`` (no error when absent)."""
        return self.restrict(p for p in self.people if p != person)

    def restrict(self, people: Iterable[str]) -> Gallery:
        """The sub-gallery of ``people`` (e.g. those allowed at a door), in
        this gallery's order; names not in the gallery are ignored."""
        wanted = set(people)
        keep = np.array([name in wanted for name in self.people], dtype=bool)
        if keep.all():
            return self
        counts, major = self._person_major()
        return Gallery(
            [name for name, k in zip(self.people, keep, strict=True) if k],
            counts[keep],
            major[np.repeat(keep, counts)] if keep.any() else major[:0],
        )


# --------------------------------------------------------------------------- identify


@dataclass(frozen=True)
class IdentifyResult:
    """1:K answer. ``person`` is the nearest person even when not matched
    (``None`` only for an empty gallery); distances are ``inf`` where there
    is no such person."""

    matched: bool
    person: str | None
    distance: float
    second_person: str | None
    second_distance: float
    reason: MatchReason


def _decide(
    people: Sequence[str],
    best: int,
    best_d: float,
    second: int,
    second_d: float,
    threshold: float,
    margin: float,
) -> IdentifyResult:
    if best < 0:
        return IdentifyResult(False, None, math.inf, None, math.inf, "empty_gallery")
    second_name = people[second] if second >= 0 else None
    reason: MatchReason
    if not best_d < threshold:
        reason = "below_threshold"
    elif second_d - best_d < margin:
        reason = "ambiguous"
    else:
        reason = "granted"
    return IdentifyResult(reason == "granted", people[best], best_d, second_name, second_d, reason)


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
