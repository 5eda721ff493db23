"""``facegate finetune``: train a triplet-loss head on a user's labelled
folders (one sub-folder of photos per person) and save it.

The encoder stays frozen (dlib's ResNet, or nn4.small2 when ``--nn4-weights``
points at the notebooks' CSV folder); only a small 128-d head is trained
with the triplet loss (alpha 0.2) and online mining. Before/after figures
are measured on images held out of training.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from facegate.core.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "finetune",
        help="train a 128-d triplet-loss head on labelled folders (one per person)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", required=True, type=Path, metavar="DIR", help="one folder per person")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="head file (.npz)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--holdout", type=float, default=0.3, help="share of each person's photos held out"
    )
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--mining", choices=("semi-hard", "batch-hard"), default="semi-hard")
    p.add_argument(
        "--nn4-weights",
        type=Path,
        metavar="DIR",
        help="use nn4.small2 with the notebooks' CSV weights instead of dlib's ResNet",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=cmd_finetune)


def _engine(nn4_weights: Path | None) -> Any:
    if nn4_weights is None:
        from facegate.engine.factory import build_face_encoder

        return build_face_encoder()
    from facegate.engine.chip import extract_chips
    from facegate.engine.detector import DetectorConfig, MtcnnDetector
    from facegate.engine.face_engine import FaceEngine
    from facegate.engine.shape_predictor import ShapePredictor
    from facegate.training.nn4 import Nn4Embedder

    return FaceEngine(
        detector=MtcnnDetector(DetectorConfig()).load(),
        predictor=ShapePredictor.load(),
        extract=extract_chips,
        embedder=Nn4Embedder.load(nn4_weights),
    )


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def cmd_finetune(args: argparse.Namespace) -> int:
    from facegate.engine.folders import database_folders
    from facegate.runtime.progress import progress_bar
    from facegate.training.finetune import FinetuneConfig, finetune_folders

    if args.epochs < 1:
        raise ConfigError("--epochs must be >= 1")
    if args.out.parent and not args.out.parent.is_dir():
        raise ConfigError(f"{args.out.parent}: no such folder for --out")
    config = FinetuneConfig(
        epochs=args.epochs,
        seed=args.seed,
        holdout=args.holdout,
        learning_rate=args.learning_rate,
        mining=args.mining,
    )
    total = sum(len(v) for v in database_folders(args.db).values())
    engine = _engine(args.nn4_weights)
    with progress_bar(total, "encoding") as tick:
        result, warnings = finetune_folders(engine, args.db, config, progress=tick)
    for w in warnings:
        print(f"facegate: warning: {w}", file=sys.stderr)
    result.head.save(args.out)
    if args.json:
        doc = result.summary()
        doc["out"] = str(args.out)
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(
        f"trained on {result.train_images} images of {result.people} people, "
        f"{result.heldout_images} held out; {args.epochs} epochs"
    )
    print(
        f"triplet loss on {result.train_triplets} training triplets: "
        f"{result.train_loss_before:.3f} -> {result.train_loss_after:.3f}"
    )
    stages = (result.before, result.initial, result.after)
    if all(m is not None for m in stages):
        print("held-out pairs         encoder  +L2 norm  trained head")
        for label, attr in (
            ("mean same-person", "mean_positive"),
            ("mean other-person", "mean_negative"),
            ("threshold", "threshold"),
            ("balanced accuracy", "balanced_accuracy"),
        ):
            cells = " ".join(f"{_fmt(getattr(m, attr)):>9}" for m in stages)
            print(f"  {label:<19} {cells}")
    else:
        print("no held-out images (people need 3+ photos): no before/after figures")
    print(f"head saved to {args.out} ({result.head.model_id})")
    return 0
