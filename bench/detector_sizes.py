"""Benchmark: the detector's sizing (smallest face, longest side) by speed and
by LFW View 1 accuracy, to choose ``DetectorConfig``'s defaults.

For each ``--configs`` entry ``MIN_FACE:MAX_SIDE``:

- speed: milliseconds per image for ``MtcnnDetector.detect`` alone and for
  the whole engine (``encode_images``: detect, landmarks, chips, ResNet) on
  the door camera's snapshots of ``bench/e2e_load.py`` (640 px JPEGs: two
  residents, an unknown face, a picture without a face), in batches of 1 and
  ``--batch`` images; and on LFW photos (250 px) at ``--batch``;
- faces: the snapshots' faces found (3 of the 4 pictures hold one), LFW photos
  where the main detector found none (before the permissive retry);
- accuracy: LFW View 1 as ``facegate evaluate --train pairsDevTrain.txt
  --pairs pairsDevTest.txt`` measures it (``build_face_encoder(fallback=True)``
  with this detector, the threshold chosen on DevTrain, the accuracy on
  DevTest); ``--pairs-limit`` pairs of each kind per file (0: all, as
  ``evaluate``).

A config ``yunet:MAX_SIDE`` puts YuNet (``pip install yuface``: the
libfacedetection CNN compiled into the wheel, 5 landmarks; not a project
dependency, the row is skipped when it is missing) in MTCNN's place beside
them: the same engine behind it (its five points give the dlib-style box),
one image per call (it has no batch form), one OpenMP thread
(``OMP_NUM_THREADS`` unless set).

Usage: ``python bench/detector_sizes.py [--configs 40:640,80:640,yunet:640]
[--pairs-limit 0] [--skip-accuracy] [--smoke]``. Prints a table and writes
JSON (default ``bench/results/detector_sizes.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from machine import describe, machine_facts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT.parent / "shared" / "data" / "lfw-view1"
DEFAULT_OUT = ROOT / "bench" / "results" / "detector_sizes.json"
DEFAULT_CONFIGS = "40:640,56:640,80:640,112:640,yunet:640"

log = logging.getLogger("bench.detector_sizes")


def parse_configs(spec: str) -> list[tuple[str, int]]:
    """``[(min face or "yunet", max side)]``."""
    out = []
    for part in spec.split(","):
        face, _, side = part.strip().partition(":")
        out.append((face, int(side or 0)))
    return out


class YuNetDetector:
    """YuNet (the ``yuface`` wheel) as a ``FaceDetector``: its five points
    (image-left eye, image-right eye, nose, mouth corners left and right, the
    order of MTCNN's) give the same dlib-style box MTCNN's do."""

    def __init__(self, max_side: int) -> None:
        # one OpenMP thread: its spinning workers and TensorFlow's pools fight
        # over two cores (read by libgomp when the library loads)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import yuface  # type: ignore[import-not-found,unused-ignore]

        self._detect = yuface.detect
        self.max_side = max_side

    def detect(self, images: Sequence[Any]) -> list[list[Any]]:
        from facegate.engine.detector import dlib_style_box, downscale

        out = []
        for image in images:
            small, factor = downscale(image, self.max_side)
            confs, _, marks = self._detect(np.ascontiguousarray(small[:, :, ::-1]))
            boxes = []
            for conf, row in sorted(zip(confs, marks, strict=True), key=lambda c: -int(c[0])):
                points = row.astype(np.float32).reshape(5, 2) / factor
                boxes.append(dlib_style_box(points, float(conf) / 100.0))
            out.append(boxes)
        return out


def ms_per_image(fn: Callable[[], object], images: int, min_seconds: float) -> float:
    fn()  # trace / warm
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 3:
            return 1000.0 * elapsed / (calls * images)


def snapshots() -> list[Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    from e2e_load import load_pictures

    from facegate.engine.images import decode_image

    _, pictures = load_pictures(640)
    return [decode_image(p.data) for p in pictures]


def lfw_sample(lfw: Path, n: int) -> list[Any]:
    from facegate.engine.images import load_image_file

    paths = sorted((lfw / "images").rglob("*.jpg"))
    if not paths:
        return []
    index = np.linspace(0, len(paths) - 1, min(n, len(paths))).round().astype(int)
    return [load_image_file(str(paths[i])) for i in index]


def accuracy(engine: Any, lfw: Path, per_kind: int) -> dict[str, Any]:
    """View 1's protocol through ``pair_distances``, as ``facegate evaluate``."""
    from facegate.core.evaluation import accuracy as acc_at
    from facegate.core.evaluation import read_pairs, train_test
    from facegate.engine.folders import pair_distances

    sets = []
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        pairs = read_pairs(lfw / name, lfw / "images")
        same = pairs.same
        keep = np.arange(len(pairs))
        if per_kind > 0:
            pos, neg = np.nonzero(same)[0], np.nonzero(~same)[0]
            pick = [np.linspace(0, len(x) - 1, min(per_kind, len(x))).round().astype(int)
                    for x in (pos, neg)]
            keep = np.concatenate([pos[pick[0]], neg[pick[1]]])
        sets.append(([(pairs.pairs[i].left, pairs.pairs[i].right) for i in keep], same[keep]))
    flat = [p for s in sets for p in s[0]]
    start = time.perf_counter()
    result = pair_distances(engine, flat, batch_size=16)
    seconds = time.perf_counter() - start
    train_d = result.distances[: len(sets[0][0])]
    test_d = result.distances[len(sets[0][0]) :]
    threshold, folds = train_test(train_d, sets[0][1], test_d, sets[1][1])
    return {
        "train_pairs": len(sets[0][0]),
        "test_pairs": len(sets[1][0]),
        "threshold": threshold,
        "accuracy": acc_at(test_d, sets[1][1], threshold),
        "accuracy_std": folds.std,
        "wrong_pairs": round((1 - acc_at(test_d, sets[1][1], threshold)) * len(test_d)),
        "images_without_face": len(result.no_face),
        "seconds": seconds,
    }


def run_config(min_face: str, max_side: int, args: argparse.Namespace,
               snaps: Sequence[Any], lfw_imgs: Sequence[Any]) -> dict[str, Any] | None:
    from facegate.engine.detector import DetectorConfig, MtcnnDetector
    from facegate.engine.factory import build_face_encoder

    detector: Any
    if min_face == "yunet":
        try:
            detector = YuNetDetector(max_side)
        except ImportError:
            print("yunet: skipped (pip install yuface to measure it)")
            return None
        engine = build_face_encoder(fallback=True)
        engine.detector = detector
    else:
        cfg = DetectorConfig(min_face_size=int(min_face), max_side=max_side)
        detector = MtcnnDetector(cfg).load()
        engine = build_face_encoder(detector=cfg, fallback=True)
    batch = list(snaps) * (args.batch // len(snaps) + 1)
    batch = batch[: args.batch]
    row: dict[str, Any] = {"min_face_size": min_face, "max_side": max_side}
    t = args.min_seconds
    row["detect_ms_snapshot_b1"] = ms_per_image(lambda: detector.detect(snaps[:1]), 1, t)
    row["detect_ms_snapshot_batch"] = ms_per_image(lambda: detector.detect(batch), len(batch), t)
    row["engine_ms_snapshot_b1"] = ms_per_image(lambda: engine.encode_images(snaps[:1]), 1, t)
    row["engine_ms_snapshot_batch"] = ms_per_image(
        lambda: engine.encode_images(batch), len(batch), t)
    row["snapshot_faces"] = [len(f) for f in detector.detect(snaps)]
    if lfw_imgs:
        row["detect_ms_lfw_batch"] = ms_per_image(
            lambda: detector.detect(lfw_imgs), len(lfw_imgs), t)
        row["lfw_sample_without_face"] = sum(not f for f in detector.detect(lfw_imgs))
    if not args.skip_accuracy and (args.lfw / "pairsDevTest.txt").is_file():
        row["view1"] = accuracy(engine, args.lfw, args.pairs_limit)
    return row


def print_table(rows: Sequence[dict[str, Any]], batch: int) -> None:
    print(f"\n{'min face':>8} {'max side':>8} | detect ms/img: snap b1 {'b' + str(batch):>4} "
          f"lfw | engine ms/img: snap b1 {'b' + str(batch):>4} | faces | View 1 DevTest")
    for r in rows:
        v = r.get("view1")
        acc = (f"{100 * v['accuracy']:.2f}% ({v['wrong_pairs']} wrong of {v['test_pairs']}; "
               f"thr {v['threshold']:.4f}; no face {v['images_without_face']})") if v else "-"
        lfw_ms = r.get("detect_ms_lfw_batch", float("nan"))
        print(f"{r['min_face_size']:>8} {r['max_side']:>8} | {r['detect_ms_snapshot_b1']:>20.1f} "
              f"{r['detect_ms_snapshot_batch']:>4.1f} {lfw_ms:>5.1f}"
              f" | {r['engine_ms_snapshot_b1']:>20.1f} {r['engine_ms_snapshot_batch']:>4.1f} | "
              f"{r['snapshot_faces']} | {acc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="MIN_FACE:MAX_SIDE,...")
    parser.add_argument("--batch", type=int, default=8, help="images per call for the batch rows")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="per timing")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--pairs-limit", type=int, default=0,
                        help="pairs of each kind per pairs file (0: all, as evaluate)")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="one config, short, no accuracy")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.smoke:
        args.configs, args.min_seconds, args.batch = "80:640", 0.0, 4
        args.skip_accuracy = True
    facts = machine_facts()
    print(f"machine: {describe(facts)}")
    snaps = snapshots()
    lfw_imgs = [] if args.smoke else lfw_sample(args.lfw, 32)
    rows = []
    for min_face, max_side in parse_configs(args.configs):
        row = run_config(min_face, max_side, args, snaps, lfw_imgs)
        if row is not None:
            rows.append(row)
            print_table(rows[-1:], args.batch)
    doc = {
        "benchmark": "detector_sizes",
        "command": " ".join(["python", "bench/detector_sizes.py", *(argv or sys.argv[1:])]),
        "machine": facts,
        "machine_after": machine_facts(),
        "batch": args.batch,
        "rows": rows,
    }
    print_table(rows, args.batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
