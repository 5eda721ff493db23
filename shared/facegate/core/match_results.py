"""What a match reports: the reasons, the 1:1 and 1:K result records, the
decision rule and the exact float64 distance that reported figures use.

Shared by :mod:`facegate.core.matching` (the fast search) and
:mod:`facegate.core.matching_reference` (the loop-based oracles), so that
both decide and report in exactly the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facegate.core.match_inputs import FloatArray

__all__ = ["REASONS", "IdentifyResult", "MatchReason", "VerifyResult"]

MatchReason = Literal["granted", "below_threshold", "ambiguous", "empty_gallery"]
REASONS: tuple[MatchReason, ...] = ("granted", "below_threshold", "ambiguous", "empty_gallery")


def _exact_min_distance(probe: FloatArray, templates: FloatArray) -> float:
    diff = templates.astype(np.float64) - probe.astype(np.float64)
    return float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))


@dataclass(frozen=True)
class VerifyResult:
    """1:1 answer: ``matched`` when ``distance < threshold``."""

    matched: bool
    distance: float
    threshold: float
    reason: MatchReason
    template: int
    """Index of the nearest template of the claimed person."""


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
