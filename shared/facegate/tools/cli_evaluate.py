"""``facegate evaluate`` and ``facegate calibrate``: accuracy and threshold
on labelled pairs of images (LFW's pair files).

Protocols of ``evaluate``:

- ``--train FILE`` given (View 1): the threshold is chosen on the training
  pairs and the accuracy measured on ``--pairs``; ``accuracy_std`` is the
  spread over 10 stratified subsets of the test pairs at that threshold.
- a 10-fold ``--pairs`` file (View 2) without ``--train``: LFW's protocol,
  each fold judged at the threshold chosen on the other nine;
  ``accuracy_std`` is the sample standard deviation over the folds.
- a single-set ``--pairs`` file without ``--train``: the same, over 10
  stratified folds of its pairs.

Without ``--train``, ``threshold`` is the one chosen on all the pairs (what a
deployment would use); the per-fold thresholds are in ``fold_thresholds``.
Images without a usable face (after a second, permissive detection pass)
put their pairs at distance ``inf``; such pairs count as wrong answers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.core.calibration import per_comparison_rate
from facegate.core.errors import ConfigError
from facegate.core.evaluation import (
    FoldResult,
    PairSet,
    Roc,
    accuracy,
    best_threshold,
    cross_validate,
    missing_images,
    read_pairs,
    roc,
    stratified_folds,
    tar_at_far,
    train_test,
)
from facegate.tools.cli_calibrate import add_door_arguments, calibrate_from_table
from facegate.tools.cli_openset import add_arguments as add_open_set_arguments
from facegate.tools.cli_openset import cmd_open_set

log = logging.getLogger(__name__)

REPORT_FAR = 1e-3
"""The FAR of the ``tar_at_far_1e-3`` figure."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="accuracy on labelled image pairs (LFW protocol)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pairs", type=Path, metavar="FILE", help="pairs to judge")
    p.add_argument("--images", required=True, type=Path, metavar="DIR", help="<DIR>/<name>/...")
    p.add_argument("--train", type=Path, metavar="FILE", help="pairs to choose the threshold on")
    p.add_argument("--json", metavar="PATH|-", help="write the report as JSON ('-': stdout)")
    p.add_argument("--plot", type=Path, metavar="PNG", help="write ROC and DET curves")
    p.add_argument("--batch", type=int, default=16, metavar="N", help="images per engine call")
    add_open_set_arguments(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser(
        "calibrate",
        help="the threshold for a target false-accept rate (per pair, or per approach at a "
        "door: --frames, --people, --templates)",
    )
    p.add_argument("--pairs", type=Path, metavar="FILE",
                   help="measure on these pairs (default: the engine's table from LFW View 1)")
    p.add_argument("--images", type=Path, metavar="DIR")
    p.add_argument("--far", type=float, default=REPORT_FAR,
                   help="target false-accept rate (per approach with --frames/--people)")
    add_door_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--batch", type=int, default=16, metavar="N")
    p.set_defaults(handler=cmd_calibrate)


# --------------------------------------------------------------------------- checks


def _load_pairs(path: Path, images: Path) -> PairSet:
    pairs = read_pairs(path, images)
    missing = missing_images(pairs.pairs)
    if missing:
        pair, image = missing[0]
        raise ConfigError(
            f"{path}:{pair.line}: image {image} not found "
            f"({len(missing)} pair(s) with missing images)"
        )
    return pairs


def _check_common(images: Path, batch: int) -> None:
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if not images.is_dir():
        raise ConfigError(f"{images}: not a folder (expected <DIR>/<name>/<name>_0001.jpg)")


def _check_output(path: Path, what: str) -> None:
    if not path.parent.is_dir():
        raise ConfigError(f"{path}: the folder for the {what} does not exist")


# --------------------------------------------------------------------------- engine


def _engine() -> Any:
    from facegate.engine.factory import build_face_encoder

    return build_face_encoder(fallback=True)


def _distances(
    engine: Any, sets: list[PairSet], batch: int
) -> tuple[list[npt.NDArray[np.float64]], list[str], list[str]]:
    """Distances of every set, each image encoded once."""
    from facegate.engine.folders import pair_distances
    from facegate.runtime.progress import progress_bar

    flat = [(p.left, p.right) for s in sets for p in s.pairs]
    total = len({path for pair in flat for path in pair})
    with progress_bar(total, "encoding") as tick:
        result = pair_distances(engine, flat, batch_size=batch, progress=tick)
    out, start = [], 0
    for s in sets:
        out.append(result.distances[start : start + len(s)])
        start += len(s)
    return out, [str(p) for p in result.no_face], [str(p) for p in result.unreadable]


# --------------------------------------------------------------------------- evaluate


def evaluation_report(
    test: PairSet,
    test_d: npt.NDArray[np.float64],
    train: PairSet | None = None,
    train_d: npt.NDArray[np.float64] | None = None,
) -> dict[str, Any]:
    """The figures of ``evaluate`` from distances (no model involved)."""
    same = test.same
    folds: FoldResult
    doc: dict[str, Any] = {}
    if train is not None and train_d is not None:
        threshold, folds = train_test(train_d, train.same, test_d, same)
        acc = accuracy(test_d, same, threshold)
        doc["protocol"] = "train/test"
        doc["train_pairs"] = len(train)
        doc["train_accuracy"] = accuracy(train_d, train.same, threshold)
    else:
        fold = test.fold if test.folds > 1 else stratified_folds(same, 10)
        folds = cross_validate(test_d, same, fold)
        acc = folds.mean
        threshold, _ = best_threshold(test_d, same)
        doc["protocol"] = f"{len(folds.accuracies)}-fold" + (
            "" if test.folds > 1 else " (stratified folds of one set)"
        )
        doc["fold_thresholds"] = list(folds.thresholds)
    tar, far_threshold = tar_at_far(test_d, same, REPORT_FAR)
    impostors = int((~same).sum())
    doc.update(
        {
            "accuracy": acc,
            "accuracy_std": folds.std,
            "fold_accuracies": list(folds.accuracies),
            "threshold": threshold,
            "tar_at_far_1e-3": tar,
            "threshold_at_far_1e-3": far_threshold,
            "far_resolution": 1.0 / impostors if impostors else None,
            "pairs": len(test),
            "matched_pairs": int(same.sum()),
            "mismatched_pairs": impostors,
            "failed_pairs": int((~np.isfinite(test_d)).sum()),
        }
    )
    return doc


def _plot(curve: Roc, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = max(min(curve.far[curve.far > 0], default=1e-4) / 2, 1e-6)
    far = np.maximum(curve.far, floor)
    frr = np.maximum(curve.frr, floor)
    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax_roc.plot(far, curve.tar, drawstyle="steps-post")
    ax_roc.set_xscale("log")
    xlabel = f"false accept rate (FAR; 0 drawn at {floor:.0e})"
    ax_roc.set_xlabel(xlabel)
    ax_roc.set_ylabel("true accept rate (TAR)")
    ax_roc.set_title("ROC")
    ax_roc.grid(True, which="both", alpha=0.3)
    ax_det.plot(far, frr, drawstyle="steps-post")
    ax_det.set_xscale("log")
    ax_det.set_yscale("log")
    ax_det.set_xlabel(xlabel)
    ax_det.set_ylabel(f"false reject rate (FRR; 0 drawn at {floor:.0e})")
    ax_det.set_title("DET")
    ax_det.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot write the plot ({exc})") from exc
    finally:
        plt.close(fig)


def _write_json(doc: dict[str, Any], target: str) -> None:
    text = json.dumps(doc, indent=2, allow_nan=False, default=float)
    if target == "-":
        print(text)
        return
    try:
        Path(target).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the report ({exc})") from exc


def _summary(doc: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"pairs: {doc['pairs']} from {args.pairs} ({doc['protocol']})",
        f"accuracy: {100 * doc['accuracy']:.2f}% (std {100 * doc['accuracy_std']:.2f}%)",
        f"threshold: {doc['threshold']:.4f}"
        + (f" (chosen on {args.train})" if args.train else " (chosen on all pairs)"),
        f"TAR at FAR 1e-3: {100 * doc['tar_at_far_1e-3']:.2f}% "
        f"(threshold {doc['threshold_at_far_1e-3']:.4f}; "
        f"FAR resolution {doc['far_resolution']:.1e})",
        f"images without a face: {doc['no_face_images']}"
        + (f" ({', '.join(doc['no_face'][:5])})" if doc["no_face"] else ""),
        f"model: {doc['model_id']}; {doc['seconds']:.0f} s",
    ]
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.open_set:
        if args.json not in (None, "-"):
            _check_output(Path(args.json), "JSON report")
        if args.plot is not None:
            _check_output(args.plot, "plot")
        return cmd_open_set(args, _write_json, _engine)
    if args.pairs is None:
        raise ConfigError("evaluate needs --pairs FILE (or --open-set on a folder of people)")
    started = time.monotonic()
    _check_common(args.images, args.batch)
    if args.json not in (None, "-"):
        _check_output(Path(args.json), "JSON report")
    if args.plot is not None:
        _check_output(args.plot, "plot")
    test = _load_pairs(args.pairs, args.images)
    train = _load_pairs(args.train, args.images) if args.train is not None else None

    engine = _engine()
    sets = [test] if train is None else [test, train]
    dists, no_face, unreadable = _distances(engine, sets, args.batch)
    doc = evaluation_report(test, dists[0], train, dists[1] if train is not None else None)
    doc.update(
        {
            "model_id": engine.model_id,
            "no_face_images": len(no_face),
            "no_face": no_face,
            "unreadable_images": len(unreadable),
            "unreadable": unreadable,
            "images": len({p for s in sets for p in s.images()}),
            "pairs_file": str(args.pairs),
            "train_file": str(args.train) if args.train is not None else None,
            "seconds": round(time.monotonic() - started, 2),
        }
    )
    if args.plot is not None:
        title = f"{args.pairs.name}: accuracy {100 * doc['accuracy']:.2f}% ({doc['model_id']})"
        _plot(roc(dists[0], test.same), args.plot, title)
        doc["plot"] = str(args.plot)
    if args.json is not None:
        _write_json(doc, args.json)
    if args.json != "-":
        print(_summary(doc, args))
    return 0


# --------------------------------------------------------------------------- calibrate


def calibration_report(pairs: PairSet, d: npt.NDArray[np.float64], far: float) -> dict[str, Any]:
    """The threshold for ``far`` on these pairs and what it gives."""
    same = pairs.same
    tar, threshold = tar_at_far(d, same, far)
    impostors = int((~same).sum())
    false_accepts = int((d[~same] < threshold).sum())
    return {
        "far_target": far,
        "threshold": threshold,
        "tar": tar,
        "far": false_accepts / impostors,
        "false_accepts": false_accepts,
        "mismatched_pairs": impostors,
        "matched_pairs": int(same.sum()),
        "far_resolution": 1.0 / impostors,
        "accuracy_at_threshold": accuracy(d, same, threshold),
        "failed_pairs": int((~np.isfinite(d)).sum()),
    }


def cmd_calibrate(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if not (0.0 < args.far < 1.0):
        raise ConfigError(f"--far must be between 0 and 1, got {args.far}")
    if args.pairs is None:
        return calibrate_from_table(args)
    if args.images is None:
        raise ConfigError("--pairs needs --images DIR")
    comparisons = args.frames * args.people * args.templates
    pair_far = per_comparison_rate(args.far, comparisons)
    _check_common(args.images, args.batch)
    pairs = _load_pairs(args.pairs, args.images)
    if pairs.same.all() or not pairs.same.any():
        raise ConfigError(f"{args.pairs}: calibration needs both matched and mismatched pairs")

    engine = _engine()
    (d,), no_face, unreadable = _distances(engine, [pairs], args.batch)
    doc = calibration_report(pairs, d, pair_far)
    doc.update(
        {
            "far_per_approach": args.far,
            "comparisons_per_approach": comparisons,
            "model_id": engine.model_id,
            "pairs_file": str(args.pairs),
            "no_face_images": len(no_face),
            "unreadable_images": len(unreadable),
            "seconds": round(time.monotonic() - started, 2),
        }
    )
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False))
        return 0
    if comparisons > 1:
        print(f"{comparisons} comparisons per approach: FAR {args.far:g} per approach is "
              f"{pair_far:.3g} per pair")
    print(
        f"threshold {doc['threshold']:.4f} for FAR <= {pair_far:.3g}: "
        f"TAR {100 * doc['tar']:.2f}%, {doc['false_accepts']} false accept(s) "
        f"of {doc['mismatched_pairs']} mismatched pairs"
    )
    if pair_far < doc["far_resolution"]:
        print(
            f"note: {doc['mismatched_pairs']} mismatched pairs resolve FAR only to "
            f"{doc['far_resolution']:.1e}; this threshold allows no false accept on them",
            file=sys.stderr,
        )
    return 0
