"""``facegate evaluate --open-set --images DIR``: the metric of a door.

On a folder of people (one sub-folder of photos per person), every photo is
encoded once (cached under the user cache, keyed by the engine's identity
and the files, so a second run takes seconds), then
(:mod:`facegate.core.openset`):

- verification over every pair of photos: TAR at FAR 1e-3, 1e-4, 1e-5 with
  the number of impostor pairs behind each figure (a FAR under ten over
  that number is not resolved and is flagged ``meaningful: false``);
- open-set identification for each gallery size that the folder allows
  (default 10, 100, 1000): that many people with more than ``--templates``
  photos enrolled, probes from their other photos and from every photo of
  the people never enrolled; DIR at FPIR 1e-2 and 1e-3, rank-1, and FPIR
  and DIR at ``--threshold`` (the fixed one), averaged over ``--draws``
  random galleries.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facegate.core.errors import ConfigError
from facegate.core.openset import DEFAULT_FARS, all_pairs, far_key, open_set, tar_at_far

DEFAULT_GALLERY_SIZES = (10, 100, 1000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("open set (--open-set --images DIR)")
    g.add_argument("--open-set", action="store_true",
                   help="all-pairs verification and open-set identification on a folder "
                   "of people (no pairs file)")
    g.add_argument("--gallery-sizes", default=",".join(map(str, DEFAULT_GALLERY_SIZES)),
                   metavar="N,N", help="people enrolled (10,100,1000; larger than the "
                   "folder allows are skipped and listed)")
    g.add_argument("--templates", type=int, default=1, help="photos enrolled per person (1)")
    g.add_argument("--draws", type=int, default=10, help="random galleries per size (10)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threshold", type=float, default=0.6,
                   help="also report strangers/residents let in at this threshold (0.6)")
    g.add_argument("--margin", type=float, default=0.0, help="identify margin (0)")


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"--gallery-sizes: {text!r} is not a list of whole numbers") from None
    if not sizes or sizes[0] < 2:
        raise ConfigError("--gallery-sizes: each size must be at least 2")
    return sizes


def open_set_report(
    encodings: Any,
    labels: Any,
    sizes: list[int],
    *,
    templates: int = 1,
    draws: int = 10,
    seed: int = 0,
    threshold: float | None = 0.6,
    margin: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The figures of ``evaluate --open-set`` from encodings and labels."""
    enc = np.asarray(encodings, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.int64)
    valid = np.isfinite(enc).all(axis=1)
    photos = np.bincount(lab)
    summary = all_pairs(enc, lab, max_far=max(DEFAULT_FARS), progress=progress)
    verification: dict[str, Any] = {
        "pairs": summary.impostors + int(summary.genuine.size),
        "genuine_pairs": int(summary.genuine.size),
        "impostor_pairs": summary.impostors,
    }
    for far in DEFAULT_FARS:
        fig = tar_at_far(summary, far)
        verification[far_key("tar_at_far", far)] = fig["tar"]
        verification[far_key("threshold_at_far", far)] = fig["threshold"]
        verification[far_key("false_accepts_allowed", far)] = fig["false_accepts_allowed"]
        verification[far_key("meaningful", far)] = fig["meaningful"]
    eligible = int((photos >= templates + 1).sum())
    rows, skipped = [], []
    for size in sizes:
        if size > eligible:
            skipped.append(
                {"gallery_size": size, "why": f"only {eligible} people have "
                 f"{templates + 1} or more photos"}
            )
            continue
        rows.append(open_set(enc, lab, size, templates=templates, draws=draws, seed=seed,
                             threshold=threshold, margin=margin))
    return {
        "protocol": "open-set",
        "images": int(lab.size),
        "images_without_face": int((~valid).sum()),
        "people": int(photos.size),
        "people_with_2_or_more": int((photos >= 2).sum()),
        "people_eligible_for_gallery": eligible,
        "verification": verification,
        "identification": rows,
        "skipped_gallery_sizes": skipped,
    }


def summary_lines(doc: dict[str, Any]) -> list[str]:
    v = doc["verification"]
    lines = [
        f"{doc['images']} photos of {doc['people']} people ({doc['people_with_2_or_more']} "
        f"with two or more); {doc['images_without_face']} without a face",
        f"all pairs: {v['genuine_pairs']} genuine, {v['impostor_pairs']} impostor",
    ]
    for far in DEFAULT_FARS:
        tar = v[far_key("tar_at_far", far)]
        note = "" if v[far_key("meaningful", far)] else " (too few impostor pairs to resolve)"
        lines.append(
            f"  TAR at FAR {far:g}: {100 * tar:.2f}% (threshold "
            f"{v[far_key('threshold_at_far', far)]:.4f}; {v['impostor_pairs']} impostor pairs, "
            f"{v[far_key('false_accepts_allowed', far)]} false accepts allowed){note}"
        )
    for row in doc["identification"]:
        at = ""
        if "threshold" in row:
            at = (f"; at {row['threshold']:g}: strangers let in "
                  f"{100 * row['fpir_at_threshold']:.1f}%, residents "
                  f"{100 * row['dir_at_threshold']:.1f}%")
        lines.append(
            f"  {row['gallery_size']:>5} enrolled ({row['draws']} draws): DIR at FPIR 1e-2 "
            f"{100 * row['dir_at_far_1e-2']:.1f}%, at 1e-3 {100 * row['dir_at_far_1e-3']:.1f}%"
            f" ({row['non_mated_probes_per_draw']:.0f} strangers per draw), rank-1 "
            f"{100 * row['rank1']:.1f}%{at}"
        )
    for skip in doc["skipped_gallery_sizes"]:
        lines.append(f"  {skip['gallery_size']:>5} enrolled: skipped ({skip['why']})")
    return lines


def plot_open_set(doc: dict[str, Any], scores: Any, path: Path) -> None:
    """DIR against FPIR per gallery size (one gallery each; ``scores``:
    ``{size: (mated best, mated right, non-mated best)}``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for size, (best, right, nm_best) in scores.items():
        cuts = np.unique(np.concatenate([best[np.isfinite(best)], nm_best[np.isfinite(nm_best)]]))
        fpir = np.searchsorted(np.sort(nm_best), cuts, side="left") / max(nm_best.size, 1)
        dir_ = np.array([((best < c) & right).mean() for c in cuts])
        keep = fpir > 0
        ax.plot(fpir[keep], dir_[keep], label=f"{size} enrolled")
    ax.set_xscale("log")
    ax.set_xlabel("strangers let in (FPIR)")
    ax.set_ylabel("residents let in as themselves (DIR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"open set: {doc['images']} photos, {doc['people']} people")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot write the plot ({exc})") from exc
    finally:
        plt.close(fig)


def cmd_open_set(
    args: argparse.Namespace,
    write_json: Callable[[dict[str, Any], str], None],
    engine_factory: Callable[[], Any],
) -> int:
    from facegate.core.openset import draw_split, identification_scores
    from facegate.engine.folder_cache import encode_folder
    from facegate.runtime.progress import progress_bar

    started = time.monotonic()
    if not args.images.is_dir():
        raise ConfigError(f"{args.images}: not a folder (expected <DIR>/<person>/<photos>)")
    if args.templates < 1 or args.draws < 1:
        raise ConfigError("--templates and --draws must be at least 1")
    sizes = _sizes(args.gallery_sizes)
    engine = engine_factory()
    bars: list[Any] = []

    def bar(total: int) -> Callable[[int], None]:
        ctx = progress_bar(total, "encoding")
        bars.append(ctx)
        tick: Callable[[int], None] = ctx.__enter__()
        return tick

    try:
        found = encode_folder(engine, args.images, batch_size=args.batch, progress=bar)
    finally:
        for ctx in bars:
            ctx.__exit__(None, None, None)
    with progress_bar(len(found), "all pairs") as tick:
        doc = open_set_report(
            found.encodings, found.labels, sizes, templates=args.templates, draws=args.draws,
            seed=args.seed, threshold=args.threshold, margin=args.margin, progress=tick,
        )
    doc.update({
        "model_id": engine.model_id,
        "images_dir": str(args.images),
        "no_face": found.failed_files[:50],
        "seconds": round(time.monotonic() - started, 2),
    })
    if args.plot is not None:
        rng = np.random.default_rng(args.seed)
        curves = {}
        for row in doc["identification"]:
            split = draw_split(found.labels, found.valid, row["gallery_size"], rng,
                               templates=args.templates)
            s = identification_scores(found.encodings, found.labels, split)
            curves[row["gallery_size"]] = (s.mated_best, s.mated_right, s.non_mated_best)
        plot_open_set(doc, curves, args.plot)
        doc["plot"] = str(args.plot)
    if args.json is not None:
        write_json(doc, args.json)
    if args.json != "-":
        print("\n".join(summary_lines(doc)))
        print(f"model: {doc['model_id']}; {doc['seconds']:.0f} s")
    return 0
