"""The gallery: everyone's templates stacked in one float32 matrix.

:class:`Gallery` is immutable (:meth:`Gallery.add`, :meth:`Gallery.remove`
and :meth:`Gallery.restrict` return new galleries) and laid out for the
search of :func:`facegate.core.matching.identify`, which imports it (this
module does not import :mod:`facegate.core.matching`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from facegate.core.match_inputs import F32, FloatArray, _as_matrix

__all__ = ["Gallery"]


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
