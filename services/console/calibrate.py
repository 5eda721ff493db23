"""The Calibration page's figures (no HTTP): the distances of a door's
granted and denied decisions as a histogram, and the threshold a target
false-accept rate gives on the enrolled population, by the same
:mod:`facegate.core.calibration` functions as ``facegate calibrate``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.core.calibration import default_model, identify_threshold, stranger_acceptance
from facegate.core.door_report import door_report
from facegate.core.policy import EVERYONE, DoorMode, DoorPolicy

BIN = 0.05
TOP = 1.2


@dataclass(frozen=True)
class Histogram:
    edges: list[float]
    granted: list[int]
    denied: list[int]

    @property
    def peak(self) -> int:
        return max([1, *self.granted, *self.denied])


def histogram(granted: Iterable[float], denied: Iterable[float]) -> Histogram:
    bins = round(TOP / BIN)
    edges = [round(i * BIN, 4) for i in range(bins + 1)]

    def count(values: Iterable[float]) -> list[int]:
        out = [0] * bins
        for v in values:
            out[min(bins - 1, max(0, int(v / BIN)))] += 1
        return out

    return Histogram(edges, count(granted), count(denied))


@dataclass(frozen=True)
class Suggestion:
    target: float
    threshold: float
    current: float
    current_strangers: float
    """Estimated share of strangers' approaches the current threshold lets in."""
    people: int
    templates: int


def suggest(
    policy: DoorPolicy,
    people: Mapping[str, npt.NDArray[np.float32]],
    target: float,
    *,
    default_threshold: float,
) -> Suggestion:
    """The threshold for ``target`` strangers let in per approach at this
    door: 1:K over the templates of the people it lets in (identify), or
    1:1 against the largest template count among them (verify)."""
    model = default_model()
    names = sorted(people) if EVERYONE in policy.allowed else sorted(
        p for p in policy.allowed if p in people
    )
    counts = [int(np.atleast_2d(people[n]).shape[0]) for n in names] or [1]
    report = door_report(policy, people, default_threshold=default_threshold, model=model)
    if policy.mode is DoorMode.IDENTIFY:
        threshold = identify_threshold(counts, frames=policy.frames, target=target, model=model)
        strangers = stranger_acceptance(report.threshold, counts, frames=policy.frames,
                                        model=model)
    else:
        most = max(counts)
        threshold = identify_threshold(
            most, people=1, frames=policy.frames, target=target, model=model
        )
        strangers = stranger_acceptance(
            report.threshold, most, people=1, frames=policy.frames, model=model
        )
    return Suggestion(target, threshold, report.threshold, strangers, len(names), sum(counts))


__all__ = ["BIN", "TOP", "Histogram", "Suggestion", "histogram", "suggest"]
