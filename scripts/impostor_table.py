"""Derive the engine's distance table (``shared/facegate/core/impostor_table.py``).

::

    .venv/bin/python scripts/impostor_table.py [--images ../shared/data/lfw-view1/images]
        [--out shared/facegate/core/impostor_table.py] [--check]

Encodes every photo of the folder once with ``facegate``'s engine (as
``facegate evaluate`` builds it; cached under the user cache, so a second
run takes seconds), then measures over *every* pair of photos:

- impostor pairs: the share closer than each distance, tabled at rates
  10^-9 .. 0.5 (steps of 1/8 decade). A rate is measured where at least
  :data:`MIN_COUNT` pairs lie under it; below, the distance is extrapolated
  linearly in log10(rate) from the two measured decades above it;
- genuine distances: from each photo of a person to the nearest of ``k``
  other photos of theirs (k = 1..4; people with k+1 photos or more), as 101
  quantiles.

Only these summary numbers are written (a few kB); no image, name or
encoding of the folder leaves it. ``--check`` exits 1 when the written
module differs from what the folder gives now (the table is stale).
"""

from __future__ import annotations

import argparse
import logging
import math
import pprint
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "lfw-view1" / "images"
DEFAULT_OUT = ROOT / "shared" / "facegate" / "core" / "impostor_table.py"
MIN_COUNT = 10
RATE_STEP = 0.125
LOWEST_LOG10 = -9.0
MAX_TEMPLATES = 4

log = logging.getLogger("impostor_table")


def impostor_rows(summary: Any) -> dict[str, Any]:
    """log10 rates and distances: measured, then extrapolated below."""
    grid = np.arange(LOWEST_LOG10, math.log10(0.5) + 1e-9, RATE_STEP)
    smallest = summary.impostor_smallest
    n = summary.impostors
    measured = [
        (float(r), float(smallest[math.floor(10.0**r * n)]))
        for r in grid
        if 10.0**r * n >= MIN_COUNT
    ]
    lowest = measured[0][0]
    fit = [(r, d) for r, d in measured if r <= lowest + 2.0]
    slope, intercept = np.polyfit([r for r, _ in fit], [d for _, d in fit], 1)
    rows = [(float(r), float(slope * r + intercept)) for r in grid if r < lowest]
    rows += measured
    # strictly increasing distances (ties in the measured steps are nudged)
    out_r, out_d = [], []
    for r, d in rows:
        if out_d and d <= out_d[-1]:
            d = out_d[-1] + 1e-6
        out_r.append(round(r, 4))
        out_d.append(round(d, 6))
    return {
        "log10_rate": out_r,
        "distance": out_d,
        "measured_from": round(lowest, 4),
        "tail_slope_per_decade": round(float(slope), 5),
        "pairs": n,
    }


def genuine_rows(enc: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> dict[str, Any]:
    levels = np.linspace(0.0, 1.0, 101)
    by: dict[str, list[float]] = {}
    probes: dict[str, int] = {}
    for k in range(1, MAX_TEMPLATES + 1):
        found: list[float] = []
        for person in np.unique(labels):
            rows = np.flatnonzero(labels == person)
            if rows.size < k + 1:
                continue
            e = enc[rows]
            d = np.linalg.norm(e[:, None, :] - e[None, :, :], axis=2)
            for i in range(rows.size):
                others = [(i + j) % rows.size for j in range(1, k + 1)]
                found.append(float(d[i, others].min()))
        by[str(k)] = [round(float(q), 6) for q in np.quantile(found, levels)]
        probes[str(k)] = len(found)
    return {"levels": [round(float(v), 4) for v in levels], "by_templates": by, "probes": probes}


def build(images: Path) -> dict[str, Any]:
    from facegate.core.openset import all_pairs
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.folder_cache import encode_folder
    from facegate.runtime.progress import progress_bar

    engine = build_face_encoder(fallback=True)

    def bar(total: int) -> Any:
        return progress_bar_tick(progress_bar, total)

    found = encode_folder(engine, images, batch_size=32, progress=bar)
    valid = found.valid
    enc = found.encodings[valid].astype(np.float64)
    labels = found.labels[valid]
    summary = all_pairs(enc, labels, max_far=0.5)
    return {
        "encoder": engine.model_id,
        "source": (
            f"{images.parent.name}: {int(valid.sum())} photos with a face of {len(found)}, "
            f"{np.unique(labels).size} people, {summary.impostors} impostor pairs, "
            f"{summary.genuine.size} genuine pairs"
        ),
        "impostor": impostor_rows(summary),
        "genuine": genuine_rows(enc, labels),
    }


_BARS: list[Any] = []


def progress_bar_tick(factory: Any, total: int) -> Any:
    """Keep the bar's context open for the encoding (closed at exit)."""
    ctx = factory(total, "encoding")
    tick = ctx.__enter__()
    _BARS.append(ctx)
    return tick


def render(table: dict[str, Any]) -> str:
    body = pprint.pformat(table, width=96, compact=True, sort_dicts=False)
    return (
        '"""The engine\'s distance table: impostor pair rates and genuine distances.\n\n'
        "Generated by ``scripts/impostor_table.py`` from LFW View 1 (summary numbers\n"
        "only); do not edit by hand. Read by :mod:`facegate.core.calibration`.\n"
        '"""\n\n'
        "from typing import Any\n\n"
        f"TABLE: dict[str, Any] = {body}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when --out is stale")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.images.is_dir():
        sys.stderr.write(f"{args.images}: not found (LFW View 1 images)\n")
        return 2
    started = time.monotonic()
    table = build(args.images)
    for ctx in _BARS:
        ctx.__exit__(None, None, None)
    text = render(table)
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        same = current == text
        sys.stdout.write("table is current\n" if same else f"{args.out} is stale\n")
        return 0 if same else 1
    args.out.write_text(text)
    imp = table["impostor"]
    sys.stdout.write(
        f"wrote {args.out} ({table['source']}; measured down to 10^{imp['measured_from']}, "
        f"tail {imp['tail_slope_per_decade']} per decade) in {time.monotonic() - started:.0f} s\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
