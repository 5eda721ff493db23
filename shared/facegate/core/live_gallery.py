"""A gallery changed in place, one person at a time, while it is searched.

:class:`~facegate.core.gallery.Gallery` is immutable: changing one person
builds a new one (every row copied). The matcher keeps a
:class:`LiveGallery` instead, so that an enrolment or a revocation costs
O(that person's templates) however large the gallery is:

- the templates live in a preallocated float32 matrix (grown by doubling,
  rarely) with the squared norm of each row (``inf`` on a free row, so a
  free row is never nearest) and the person owning it (``-1`` when free);
- :meth:`put` writes a person's new rows into free rows first, then makes
  them theirs, then frees their old rows (a search meanwhile sees the old
  rows, the new rows or both: always templates of that person);
  :meth:`remove` hides the rows (``inf`` norms), then frees them;
- writers take a lock for the microseconds of a change; searches take no
  lock.

A search (:meth:`identify`) computes one distance per row, takes the
nearest row, hides that person's rows, takes the next nearest (the
runner-up), and recomputes both people's distances exactly from their
*current* templates (as :func:`facegate.core.matching.identify_many`
does). A search started after a change returned sees that change: a person
whose :meth:`remove` returned is never returned. A change made while a
search runs may or may not be seen by it.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.core.match_inputs import F32, _as_matrix, _as_vector, _check_threshold
from facegate.core.match_results import IdentifyResult, _decide, _exact_min_distance

__all__ = ["LiveGallery"]

Rows = npt.NDArray[np.int64]

_SERIALS = itertools.count(1)

_MAX_PASSES = 10_000
"""Nearest-row passes of one search (each hides at least one row)."""


@dataclass(frozen=True)
class _View:
    """The arrays a search reads (replaced as a whole when the matrix grows)."""

    templates: F32
    sq_norms: F32
    owner: npt.NDArray[np.int32]
    high: int
    """Rows ``[0, high)`` have ever been used."""


class LiveGallery:
    """Templates of many people, changed in place (thread-safe)."""

    def __init__(self, dim: int = 128, capacity: int = 1024) -> None:
        if dim < 1 or capacity < 1:
            raise ValueError("dim and capacity must be >= 1")
        self._dim = dim
        self._lock = threading.Lock()
        self._view = _View(
            np.zeros((capacity, dim), dtype=np.float32),
            np.full(capacity, np.inf, dtype=np.float32),
            np.full(capacity, -1, dtype=np.int32),
            0,
        )
        self._free: list[int] = []
        self._rows: dict[str, Rows] = {}
        """Each person's rows, in enrolment order (a new array on every change)."""
        self._pid: dict[str, int] = {}
        self._names: list[str | None] = []
        self._free_pids: list[int] = []
        self._template_count = 0
        self.changes = 0
        """How many :meth:`put` and :meth:`remove` calls changed something."""
        self.serial = next(_SERIALS)
        """Unique per gallery (with :attr:`changes`: a cache key for what depends on it)."""

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, npt.ArrayLike], *, dim: int = 128) -> LiveGallery:
        """``{person: templates (k, d)}`` -> a gallery with room to grow by an eighth."""
        blocks = {name: _as_matrix(v, f"templates of {name!r}") for name, v in mapping.items()}
        if blocks:
            dim = next(iter(blocks.values())).shape[1]
        total = sum(b.shape[0] for b in blocks.values())
        gallery = cls(dim, total + max(1024, total // 8))
        if blocks:
            gallery._fill(blocks)
        return gallery

    def _fill(self, blocks: Mapping[str, F32]) -> None:
        view = self._view
        counts = np.array([b.shape[0] for b in blocks.values()], dtype=np.int64)
        n = int(counts.sum())
        stacked = np.concatenate(list(blocks.values()), axis=0)
        if stacked.shape[1] != self._dim:
            raise ValueError(f"templates: want dimension {self._dim}")
        view.templates[:n] = stacked
        view.sq_norms[:n] = np.einsum("ij,ij->i", view.templates[:n], view.templates[:n])
        view.owner[:n] = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for pid, (name, start, count) in enumerate(zip(blocks, starts, counts, strict=True)):
            _check_name(name)
            self._rows[name] = np.arange(start, start + count, dtype=np.int64)
            self._pid[name] = pid
            self._names.append(name)
        self._template_count = n
        self._view = _View(view.templates, view.sq_norms, view.owner, n)

    # --- reading -----------------------------------------------------------------

    def __len__(self) -> int:
        """Number of people."""
        return len(self._rows)

    def __contains__(self, person: object) -> bool:
        return person in self._rows

    def __repr__(self) -> str:
        return f"LiveGallery(people={len(self)}, templates={self.template_count}, dim={self.dim})"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def template_count(self) -> int:
        return self._template_count

    @property
    def capacity(self) -> int:
        return int(self._view.templates.shape[0])

    @property
    def nbytes(self) -> int:
        view = self._view
        return view.templates.nbytes + view.sq_norms.nbytes + view.owner.nbytes

    @property
    def people(self) -> tuple[str, ...]:
        return tuple(self._rows)

    def count_of(self, person: str) -> int:
        """Templates of ``person`` (0 when not enrolled)."""
        rows = self._rows.get(person)
        return 0 if rows is None else int(rows.size)

    def templates_total(self, people: Iterable[str] | None = None) -> int:
        """Templates of ``people`` (everyone's with ``None``)."""
        if people is None:
            return self._template_count
        return sum(self.count_of(p) for p in people)

    def templates_of(self, person: str) -> F32:
        """A copy of ``person``'s current templates, in enrolment order."""
        got = self._current(person)
        if got is None:
            raise KeyError(person)
        return got

    def _current(self, person: str) -> F32 | None:
        """The person's templates as published now; re-read when a change
        lands while copying them (rows may be reused once freed)."""
        for _ in range(100):
            view, rows = self._view, self._rows.get(person)
            if rows is None:
                return None
            out: F32 = view.templates[rows]
            if self._rows.get(person) is rows and self._view is view:
                return out
        with self._lock:
            rows = self._rows.get(person)
            return None if rows is None else self._view.templates[rows]

    # --- changing ----------------------------------------------------------------

    def put(self, person: str, templates: npt.ArrayLike) -> None:
        """Make ``templates (k, d)`` all of ``person``'s templates (an
        enrolment: the person's stored templates, old and new)."""
        _check_name(person)
        block = _as_matrix(templates, f"templates of {person!r}", dim=self._dim)
        block = np.ascontiguousarray(block, dtype=np.float32)
        with self._lock:
            old = self._rows.get(person)
            pid = self._pid.get(person)
            if pid is None:
                pid = self._free_pids.pop() if self._free_pids else len(self._names)
                if pid == len(self._names):
                    self._names.append(person)
                else:
                    self._names[pid] = person
                self._pid[person] = pid
            rows = self._take(block.shape[0])
            view = self._view
            view.templates[rows] = block
            view.sq_norms[rows] = np.einsum("ij,ij->i", block, block)
            view.owner[rows] = pid
            self._rows[person] = rows
            self._template_count += block.shape[0]
            if old is not None:
                self._release(old)
            self.changes += 1

    def remove(self, person: str) -> bool:
        """Take ``person`` out (``False`` when absent)."""
        with self._lock:
            rows = self._rows.pop(person, None)
            if rows is None:
                return False
            self._release(rows)
            pid = self._pid.pop(person)
            self._names[pid] = None
            self._free_pids.append(pid)
            self.changes += 1
            return True

    def _take(self, k: int) -> Rows:
        """``k`` free rows (under the lock)."""
        view = self._view
        from_free = min(k, len(self._free))
        taken = [self._free.pop() for _ in range(from_free)]
        fresh = k - from_free
        if view.high + fresh > view.templates.shape[0]:
            view = self._grow(view.high + fresh)
        taken.extend(range(view.high, view.high + fresh))
        if fresh:
            self._view = _View(view.templates, view.sq_norms, view.owner, view.high + fresh)
        return np.array(taken, dtype=np.int64)

    def _grow(self, need: int) -> _View:
        old = self._view
        cap = max(need, 2 * old.templates.shape[0])
        templates = np.zeros((cap, self._dim), dtype=np.float32)
        sq_norms = np.full(cap, np.inf, dtype=np.float32)
        owner = np.full(cap, -1, dtype=np.int32)
        templates[: old.high] = old.templates[: old.high]
        sq_norms[: old.high] = old.sq_norms[: old.high]
        owner[: old.high] = old.owner[: old.high]
        self._view = _View(templates, sq_norms, owner, old.high)
        return self._view

    def _release(self, rows: Rows) -> None:
        """Hide ``rows`` from searches, then free them (under the lock)."""
        view = self._view
        view.sq_norms[rows] = np.inf
        view.owner[rows] = -1
        self._template_count -= int(rows.size)
        self._free.extend(int(r) for r in rows)

    # --- searching ---------------------------------------------------------------

    def identify(
        self, probe: npt.ArrayLike, threshold: float, *, margin: float = 0.0
    ) -> IdentifyResult:
        """Who is this? As :func:`facegate.core.matching.identify`: the
        nearest person (minimum over their templates), matched when under
        ``threshold`` and the runner-up is at least ``margin`` further."""
        _check_threshold(threshold, margin)
        p = _as_vector(probe, "probe", dim=self._dim)
        view = self._view
        high = view.high
        found: list[tuple[float, str]] = []
        if high:
            score = view.templates[:high] @ p.astype(np.float32)
            score *= -2.0
            score += view.sq_norms[:high]  # |t|^2 - 2 t.p: the order of |t - p|^2
            for name in self._nearest_two(score, view.owner, high):
                current = self._current(name)
                if current is not None:
                    found.append((_exact_min_distance(p, current), name))
        if not found:
            return _decide((), -1, math.inf, -1, math.inf, threshold, margin)
        found.sort()
        names = tuple(name for _, name in found)
        second_d = found[1][0] if len(found) > 1 else math.inf
        return _decide(names, 0, found[0][0], 1 if len(found) > 1 else -1, second_d,
                       threshold, margin)

    def _nearest_two(self, score: F32, owner: npt.NDArray[np.int32], high: int) -> list[str]:
        """The people owning the two nearest rows of distinct people."""
        names: list[str] = []
        for _ in range(_MAX_PASSES):
            if len(names) == 2:
                break
            r = int(np.argmin(score))
            if not np.isfinite(score[r]):
                break
            score[r] = np.inf
            pid = int(owner[r])
            name = self._names[pid] if 0 <= pid < len(self._names) else None
            rows = self._rows.get(name) if name is not None else None
            if name is None or rows is None:
                continue
            score[rows[rows < high]] = np.inf
            if name not in names:
                names.append(name)
        return names


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"person names must be non-empty strings, got {name!r}")
