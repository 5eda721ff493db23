"""Benchmark: what a face-only door does at building scale (LFW View 1).

Four parts, on every photo of the folder encoded once (cached under the user
cache, keyed by the encoder; ours as ``facegate evaluate`` builds it,
face_recognition 1.3.0 as ``bench/encoder_chips.py`` runs it):

(a) open set, ours beside face_recognition: all-pairs TAR at FAR 1e-3,
    1e-4, 1e-5 and open-set identification (DIR at FPIR 1e-2, 1e-3, rank-1,
    strangers and residents let in at the fixed threshold 0.6) at 10, 100
    and 1000 enrolled (``facegate.tools.cli_openset.open_set_report``).
(b) calibration on held-out people: the people are split at random into
    halves; the distance table is derived from one half
    (``facegate.core.calibration_table``) and the door thresholds it gives
    (``identify_threshold``, target 1e-3 strangers per approach) are
    applied to galleries and strangers drawn from the other half only; the
    strangers let in are counted. Both directions of ``--splits`` splits,
    for 10/100/1000 enrolled with 1 template, 10/100 with 2, and 3-frame
    approaches. The measured rate must be within a factor of two of the
    target.
(c) 1 vs 3 frames: residents let in at 0.1% strangers per approach, 10 and
    100 enrolled (1 template), at the thresholds the committed table gives
    for 1 and 3 frames; people with four or more photos are the residents
    (one enrolled, three as the frames of an approach), strangers with three
    or more photos make 3-frame approaches. The strangers let in are measured
    too.
(d) the margin over the runner-up: strangers and residents let in at the
    calibrated threshold with margins 0, 0.02, 0.05, 0.1, and DIR at FPIR
    1e-3 when the threshold is refitted for each margin.

Usage: ``python bench/openset.py [--quick | --smoke] [--out FILE]
[--images DIR] [--skip-face-recognition]``. Prints tables and writes JSON
(default ``bench/results/openset.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from machine import describe, machine_facts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "lfw-view1" / "images"
DEFAULT_OUT = ROOT / "bench" / "results" / "openset.json"
FR_ID = "face_recognition-1.3.0 (HOG upsample 1, 5-point landmarks, dlib ResNet, 1 jitter)"
TARGET = 1e-3
log = logging.getLogger("bench.openset")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


# --------------------------------------------------------------------------- encodings


def ours(images: Path) -> Any:
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.folder_cache import encode_folder

    engine = build_face_encoder(fallback=True)
    return encode_folder(engine, images, batch_size=32, progress=_bar)


def face_recognition(images: Path) -> Any:
    from encoder_chips import central_location, face_recognition_api

    from facegate.engine.folder_cache import cached_folder_encodings

    api = face_recognition_api()

    def encode(paths: Sequence[Path], tick: Callable[[int], None] | None) -> tuple[Any, list[str]]:
        rows = np.full((len(paths), 128), np.nan, dtype=np.float32)
        problems = []
        for i, path in enumerate(paths):
            image = api.load_image_file(str(path))
            locations = api.face_locations(image)
            if locations:
                k = central_location(locations, image.shape)
                rows[i] = api.face_encodings(image, [locations[k]])[0]
            else:
                problems.append(f"{path}: no face found")
            if tick is not None:
                tick(1)
        return rows, problems

    return cached_folder_encodings(images, FR_ID, encode, progress=_bar)


def _bar(total: int) -> Callable[[int], None]:
    started = time.monotonic()
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if done[0] % 500 < n or done[0] == total:
            rate = done[0] / max(time.monotonic() - started, 1e-9)
            log.warning("encoded %d/%d (%.1f images/s)", done[0], total, rate)

    return tick


# --------------------------------------------------------------------------- (b) held out


def _distances(e: F64, a: I64, b: I64) -> F64:
    x, y = e[a], e[b]
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    out: F64 = np.sqrt(np.maximum(d2, 0.0))
    return out


def stranger_trials(
    e: F64,
    labels: I64,
    people: I64,
    *,
    size: int,
    templates: int,
    frames: int,
    threshold: float,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """One gallery of ``size`` people drawn from ``people`` (``templates``
    photos each); every other person of ``people`` with ``frames`` photos or
    more makes approaches of ``frames`` photos (all photos in turn for one
    frame, one approach per person otherwise). ``(let in, approaches)``."""
    count = np.bincount(labels, minlength=int(labels.max()) + 1)
    rows_of = {int(p): np.flatnonzero(labels == p) for p in people.tolist()}
    eligible = np.array([p for p in people.tolist() if count[p] >= templates])
    chosen = rng.choice(eligible, size, replace=False)
    gallery = np.concatenate(
        [rng.choice(rows_of[int(p)], templates, replace=False) for p in chosen]
    )
    others = [int(p) for p in people.tolist() if p not in set(chosen.tolist())]
    if frames == 1:
        probes = np.concatenate([rows_of[p] for p in others])
        nearest = _distances(e, probes, gallery).min(axis=1)
        return int((nearest < threshold).sum()), int(probes.size)
    approaches = [
        rng.choice(rows_of[p], frames, replace=False) for p in others if count[p] >= frames
    ]
    if not approaches:
        return 0, 0
    flat = np.concatenate(approaches)
    nearest = _distances(e, flat, gallery).min(axis=1).reshape(len(approaches), frames).min(axis=1)
    return int((nearest < threshold).sum()), len(approaches)


def held_out(found: Any, splits: int, draws: dict[int, int], seed: int) -> list[dict[str, Any]]:
    from facegate.core.calibration import DistanceModel, identify_threshold
    from facegate.core.calibration_table import build_table

    valid = found.valid
    e = np.where(valid[:, None], found.encodings, 0.0).astype(np.float64)
    labels = found.labels
    cases = [
        (10, 1, 1), (100, 1, 1), (1000, 1, 1), (10, 2, 1), (100, 2, 1), (10, 1, 3), (100, 1, 3)
    ]
    tally: dict[tuple[int, int, int], list[Any]] = {c: [] for c in cases}
    rng = np.random.default_rng(seed)
    people_all = np.unique(labels[valid])
    for split in range(splits):
        half = rng.random(people_all.size) < 0.5
        for direction, (fit, test) in enumerate(((half, ~half), (~half, half))):
            fit_people, test_people = people_all[fit], people_all[test]
            rows = np.isin(labels, fit_people) & valid
            model = DistanceModel.from_table(
                build_table(found.encodings[rows], labels[rows], encoder=found.encoder_id)
            )
            test_rows = np.isin(labels, test_people) & valid
            count = np.bincount(labels[test_rows], minlength=int(labels.max()) + 1)
            for case in cases:
                size, templates, frames = case
                if (count[test_people] >= templates).sum() < size + 50:
                    continue
                t = identify_threshold(
                    templates, people=size, frames=frames, target=TARGET, model=model
                )
                hits = trials = 0
                for _ in range(draws.get(size, 1)):
                    h, n = stranger_trials(
                        e, labels, test_people[count[test_people] > 0], size=size,
                        templates=templates, frames=frames, threshold=t, rng=rng,
                    )
                    hits, trials = hits + h, trials + n
                tally[case].append((split, direction, t, hits, trials))
                log.warning("split %d/%d %s: t=%.4f %d/%d", split, direction, case, t, hits, trials)
    out = []
    for (size, templates, frames), runs in tally.items():
        if not runs:
            out.append({"enrolled": size, "templates": templates, "frames": frames,
                        "skipped": "the halves of the folder are too small"})
            continue
        hits = sum(r[3] for r in runs)
        trials = sum(r[4] for r in runs)
        rate = hits / trials if trials else math.nan
        ratios = [r[3] / r[4] / TARGET for r in runs if r[4]]
        lo, hi = _poisson_interval(hits)
        out.append({
            "enrolled": size, "templates": templates, "frames": frames, "target": TARGET,
            "measured": rate, "ratio": rate / TARGET, "strangers_let_in": hits,
            "approaches": trials, "ratio_95_interval": [lo / trials / TARGET, hi / trials / TARGET],
            "ratio_per_half": [round(r, 2) for r in ratios],
            "threshold_mean": float(np.mean([r[2] for r in runs])), "halves": len(runs),
        })
    return out


def _poisson_interval(k: int) -> tuple[float, float]:
    """An approximate 95% interval for a Poisson count (Wilson-Hilferty)."""
    def q(n: float, z: float) -> float:
        return n * (1 - 1 / (9 * n) + z / (3 * math.sqrt(n))) ** 3 if n > 0 else 0.0
    return (q(k, -1.96) if k > 0 else 0.0, q(k + 1, 1.96))


# --------------------------------------------------------------------------- (c) frames, (d) margin


def frames_and_margins(found: Any, draws: int, seed: int) -> dict[str, Any]:
    from facegate.core.calibration import identify_threshold
    from facegate.core.openset import (
        dir_at_fpir,
        draw_split,
        identification_scores,
        rate_at_threshold,
    )

    valid = found.valid
    e = np.where(valid[:, None], found.encodings, 0.0).astype(np.float64)
    labels = found.labels
    count = np.bincount(labels)
    rng = np.random.default_rng(seed)
    frames_rows, margin_rows = [], []
    for size in (10, 100):
        acc: dict[str, list[float]] = {}
        for _ in range(draws):
            # residents: people with four or more photos (one enrolled, three frames)
            four = np.flatnonzero(count >= 4)
            chosen = rng.choice(four, size, replace=False)
            rows = {int(p): rng.permutation(np.flatnonzero(labels == p)) for p in chosen}
            gallery = np.array([rows[int(p)][0] for p in chosen])
            t1 = identify_threshold(1, people=size, frames=1)
            t3 = identify_threshold(1, people=size, frames=3)
            for frames, t in ((1, t1), (3, t3)):
                shots = np.array([rows[int(p)][1 : 1 + frames] for p in chosen]).reshape(-1)
                d = _distances(e, shots, gallery).reshape(size, frames, size)
                right = d.argmin(axis=2) == np.arange(size)[:, None]
                ok = ((d.min(axis=2) < t) & right).any(axis=1)
                acc.setdefault(f"residents_{frames}", []).append(float(ok.mean()))
                strangers = [p for p in np.flatnonzero(count >= frames) if p not in set(chosen)]
                approach = np.concatenate(
                    [rng.choice(np.flatnonzero(labels == p), frames, replace=False)
                     for p in strangers]
                )
                near = _distances(e, approach, gallery).min(axis=1).reshape(-1, frames).min(axis=1)
                acc.setdefault(f"strangers_{frames}", []).append(float((near < t).sum()))
                acc.setdefault(f"approaches_{frames}", []).append(float(len(strangers)))
                acc.setdefault(f"threshold_{frames}", []).append(t)
        frames_rows.append({
            "enrolled": size, "draws": draws,
            **{k: (float(np.sum(v)) if k.startswith(("strangers", "approaches"))
                   else float(np.mean(v))) for k, v in acc.items()},
        })
    for size in (10, 100, 1000):
        t = identify_threshold(1, people=size)
        sums: dict[float, list[tuple[float, float, float]]] = {}
        for _ in range(draws if size < 1000 else max(1, draws // 4)):
            split = draw_split(labels, valid, size, rng, templates=1)
            scores = identification_scores(found.encodings, labels, split)
            for m in (0.0, 0.02, 0.05, 0.1):
                fpir, dir_ = rate_at_threshold(scores, t, m)
                refit, _, _ = dir_at_fpir(scores, TARGET, m)
                sums.setdefault(m, []).append((fpir, dir_, refit))
        for m, values in sums.items():
            arr = np.array(values)
            margin_rows.append({
                "enrolled": size, "margin": m, "threshold": t,
                "strangers_let_in": float(arr[:, 0].mean()),
                "residents_let_in": float(arr[:, 1].mean()),
                "dir_at_far_1e-3_refitted": float(arr[:, 2].mean()), "draws": len(values),
            })
    return {"frames": frames_rows, "margins": margin_rows}


# --------------------------------------------------------------------------- report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="fewer splits and draws")
    parser.add_argument("--smoke", action="store_true", help="tiny: for the smoke test")
    parser.add_argument("--skip-face-recognition", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not args.images.is_dir():
        print(f"{args.images}: not found (LFW View 1); nothing measured", file=sys.stderr)
        return 2
    from facegate.tools.cli_openset import open_set_report, summary_lines

    started = time.monotonic()
    facts = machine_facts()
    print(f"machine: {describe(facts)}")
    splits, draws, id_draws = (6, {10: 200, 100: 60, 1000: 20}, 10)
    if args.quick:
        splits, draws, id_draws = (2, {10: 50, 100: 20, 1000: 5}, 3)
    if args.smoke:
        splits, draws, id_draws = (1, {10: 20, 100: 2, 1000: 1}, 1)
    sizes = [10, 100, 1000] if not args.smoke else [10]
    result: dict[str, Any] = {"machine": facts, "images": str(args.images), "open_set": {}}
    pipelines = [("ours", ours)]
    if not args.skip_face_recognition:
        pipelines.append(("face_recognition", face_recognition))
    encoded: dict[str, Any] = {}
    for name, build in pipelines:
        t0 = time.monotonic()
        found = build(args.images)
        encoded[name] = found
        doc = open_set_report(found.encodings, found.labels, sizes, draws=id_draws,
                              seed=args.seed, threshold=0.6)
        doc["encoder"] = found.encoder_id
        doc["seconds"] = round(time.monotonic() - t0, 1)
        result["open_set"][name] = doc
        print(f"\n== (a) open set: {name} ({found.encoder_id})")
        print("\n".join(summary_lines(doc)))
    result["load_after_open_set"] = machine_facts()["load_average"]
    print("\n== (b) calibration on held-out people (table from one half, tested on the other)")
    result["held_out"] = held_out(encoded["ours"], splits, draws, args.seed)
    for row in result["held_out"]:
        if "skipped" in row:
            print(f"  {row['enrolled']} enrolled x{row['templates']}, {row['frames']} frame(s): "
                  f"skipped ({row['skipped']})")
            continue
        lo, hi = row["ratio_95_interval"]
        print(f"  {row['enrolled']:>5} enrolled x{row['templates']}, {row['frames']} frame(s): "
              f"let in {row['strangers_let_in']} of {row['approaches']} approaches = "
              f"{row['measured']:.2e} ({row['ratio']:.2f}x target; 95% {lo:.2f}-{hi:.2f}x; "
              f"halves {min(row['ratio_per_half'])}-{max(row['ratio_per_half'])}x), "
              f"threshold {row['threshold_mean']:.4f}")
    print("\n== (c) 1 vs 3 frames, (d) margins (committed table)")
    result.update(frames_and_margins(encoded["ours"], id_draws, args.seed))
    for row in result["frames"]:
        print(f"  {row['enrolled']} enrolled: residents let in {100 * row['residents_1']:.1f}% "
              f"with 1 frame (t={row['threshold_1']:.4f}), {100 * row['residents_3']:.1f}% with 3 "
              f"(t={row['threshold_3']:.4f}); strangers let in {row['strangers_1']:.0f}/"
              f"{row['approaches_1']:.0f} and {row['strangers_3']:.0f}/{row['approaches_3']:.0f}")
    for row in result["margins"]:
        print(f"  {row['enrolled']} enrolled, margin {row['margin']}: strangers "
              f"{100 * row['strangers_let_in']:.3f}%, "
              f"residents {100 * row['residents_let_in']:.1f}%"
              f" at t={row['threshold']:.4f}; refitted DIR at FPIR 1e-3 "
              f"{100 * row['dir_at_far_1e-3_refitted']:.1f}%")
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load_at_end"] = machine_facts()["load_average"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, allow_nan=False, default=float) + "\n")
    print(f"\nwrote {args.out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
