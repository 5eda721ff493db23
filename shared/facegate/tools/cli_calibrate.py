"""``facegate calibrate`` for a door: the threshold per approach, not per pair.

A door's stranger (or impostor) gets ``frames x people x templates``
comparisons per approach; the false-accept rate asked for is per approach,
so the pair rate is ``1 - (1 - far) ** (1 / comparisons)``
(:mod:`facegate.core.calibration`). With ``--pairs`` it is measured on those
pairs; without, it is read from the engine's table (LFW View 1, all pairs),
which also gives the share of residents let in.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from facegate.core.calibration import (
    comparisons,
    default_model,
    identify_threshold,
    per_comparison_rate,
    stranger_acceptance,
)
from facegate.core.errors import ConfigError


def add_door_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=1, metavar="N",
                   help="frames per approach (each one a try for an impostor) (1)")
    p.add_argument("--people", type=int, default=1, metavar="P",
                   help="people an identify door compares with (1: a verify door)")
    p.add_argument("--templates", type=int, default=1, metavar="T",
                   help="enrolled photos per person (1)")


def calibrate_from_table(args: argparse.Namespace) -> int:
    """The threshold from the engine's table (no images needed)."""
    if min(args.frames, args.people, args.templates) < 1:
        raise ConfigError("--frames, --people and --templates must be at least 1")
    model = default_model()
    n = comparisons(args.templates, args.frames, people=args.people)
    threshold = identify_threshold(
        args.templates, frames=args.frames, people=args.people, target=args.far, model=model
    )
    doc: dict[str, Any] = {
        "source": "table",
        "table": model.source,
        "model_id": model.encoder,
        "far_per_approach": args.far,
        "comparisons_per_approach": n,
        "far_per_pair": per_comparison_rate(args.far, n),
        "threshold": threshold,
        "extrapolated": model.extrapolated(threshold),
        "stranger_acceptance": stranger_acceptance(
            threshold, args.templates, frames=args.frames, people=args.people, model=model
        ),
        "resident_acceptance_per_frame": model.resident_rate(threshold, args.templates),
    }
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False))
        return 0
    print(
        f"threshold {threshold:.4f} for {args.far:g} strangers per approach: {n} comparisons "
        f"({args.people} people x {args.templates} template(s) x {args.frames} frame(s)), "
        f"{doc['far_per_pair']:.3g} per pair"
        + (" (below what the table measured: extrapolated)" if doc["extrapolated"] else "")
    )
    print(
        f"residents let in: about {100 * doc['resident_acceptance_per_frame']:.1f}% per frame "
        f"(engine table: {model.source})"
    )
    return 0
