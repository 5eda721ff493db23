"""Enrolment checks (pure): a photo that looks like someone else.

A photo enrolled under the wrong name lets the wrong person in. Before new
templates are stored, :func:`likely_mixups` compares each new photo with the
person's own other photos (the other new ones and those already enrolled)
and with everyone else enrolled: a photo nearer to another person than to
the nearest of its own is refused, naming both distances. A photo with no
own photo to compare with (the person's first and only) cannot be checked
this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Mixup", "likely_mixups"]


@dataclass(frozen=True)
class Mixup:
    index: int
    """Which new photo (0-based, in the order given)."""
    other: str
    other_distance: float
    own_distance: float

    def describe(self, photo: str, person: str) -> str:
        return (
            f"{photo} is closer to {self.other} (distance {self.other_distance:.3f}) than to "
            f"{person}'s other photos (nearest {self.own_distance:.3f}): a mix-up? "
            f"enrol it under the right name, or use another photo"
        )


def _dist(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return out


def likely_mixups(
    person: str,
    new: npt.ArrayLike,
    enrolled: Mapping[str, npt.ArrayLike],
) -> list[Mixup]:
    """The new photos (rows of ``new``) nearer to another enrolled person
    than to ``person``'s own other photos."""
    rows = np.asarray(new, dtype=np.float64).reshape(-1, np.asarray(new).shape[-1])
    dim = rows.shape[1]
    existing = enrolled.get(person)
    own_old = (
        np.asarray(existing, dtype=np.float64).reshape(-1, dim)
        if existing is not None
        else np.zeros((0, dim))
    )
    out: list[Mixup] = []
    for i in range(rows.shape[0]):
        own = np.concatenate([own_old, np.delete(rows, i, axis=0)])
        if own.shape[0] == 0:
            continue
        own_d = float(_dist(rows[i : i + 1], own).min())
        best: tuple[float, str] | None = None
        for name, templates in enrolled.items():
            if name == person:
                continue
            t = np.asarray(templates, dtype=np.float64).reshape(-1, dim)
            d = float(_dist(rows[i : i + 1], t).min())
            if best is None or d < best[0]:
                best = (d, name)
        if best is not None and best[0] < own_d:
            out.append(Mixup(i, best[1], best[0], own_d))
    return out
