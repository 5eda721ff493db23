"""Benchmark: 1:K identify (``facegate.core.matching``) against gallery size.

Synthetic galleries of random 128-d unit vectors, several templates per
person (default 3), at 1k, 10k, 100k and 1M templates. For each size:

- build time and the gallery's memory (templates, norms, owner index);
- one probe at a time: ``identify`` latency (median and p95, ms);
- batched probes (default 64): ``identify_many`` latency per batch and per
  probe;
- the peak extra memory one query allocates (tracemalloc sees numpy's
  buffers);
- correctness: a sample of probes is answered again by the loop-based
  ``reference_identify`` and must give the same person and distance.

Half the probes are noisy copies of enrolled templates, half strangers.
Timings are single-process; numpy's BLAS may use several threads.

Usage: ``python bench/identify.py [--smoke] [--sizes 1000,10000]
[--out FILE]``. Prints a table and writes JSON (default
``bench/results/identify.json``) and a PNG of latency and memory against the
gallery size beside it.

``--updates``: the matcher's gallery absorbing enrolments and revocations
instead (full reload against incremental apply, decisions while changes
stream in; :mod:`gallery_updates`), at 100k and 1M templates by default, on
a Redis server of its own at ``--redis-port``; JSON to
``bench/results/gallery_updates.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from machine import describe, machine_facts

from facegate.core.matching import Gallery, identify, identify_many, reference_identify

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "identify.json"
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
SMOKE_SIZES = (300, 3_000)
UPDATE_SIZES = (100_000, 1_000_000)
UPDATES_OUT = ROOT / "bench" / "results" / "gallery_updates.json"
DIM = 128
THRESHOLD = 0.6
MARGIN = 0.05

F32 = npt.NDArray[np.float32]
log = logging.getLogger("bench.identify")


def unit_vectors(rng: np.random.Generator, n: int, chunk: int = 100_000) -> F32:
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + block.shape[0]] = block
    return out


def build_gallery(rng: np.random.Generator, templates: int, per_person: int) -> Gallery:
    people = max(1, templates // per_person)
    t = unit_vectors(rng, people * per_person)
    mapping = {f"p{i:07d}": t[i * per_person : (i + 1) * per_person] for i in range(people)}
    return Gallery.from_mapping(mapping)


def make_probes(rng: np.random.Generator, gallery: Gallery, n: int) -> F32:
    rows = rng.integers(0, gallery.template_count, n)
    near = gallery.templates[rows] + rng.normal(0, 0.02, (n, DIM)).astype(np.float32)
    probes = unit_vectors(rng, n)
    probes[::2] = near[::2]
    return probes


def timed(fn: Callable[[], object], repeats: int, min_seconds: float) -> list[float]:
    """Seconds per call: at least ``repeats`` calls and ``min_seconds``."""
    fn()  # warm caches
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 50 * repeats:
            break
    return times


def peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def bench_size(
    size: int, *, per_person: int, batch: int, repeats: int, min_seconds: float, check: int
) -> dict[str, Any]:
    rng = np.random.default_rng(size)
    t0 = time.perf_counter()
    gallery = build_gallery(rng, size, per_person)
    build_s = time.perf_counter() - t0
    gallery_bytes = gallery.nbytes
    probes = make_probes(rng, gallery, max(batch, check, 16))

    cursor = iter(range(10**9))

    def one() -> object:
        return identify(probes[next(cursor) % len(probes)], gallery, THRESHOLD, margin=MARGIN)

    single = timed(one, repeats, min_seconds)
    batched = timed(
        lambda: identify_many(probes[:batch], gallery, THRESHOLD, margin=MARGIN),
        max(3, repeats // 5),
        min_seconds,
    )
    single_peak = peak_bytes(lambda: identify(probes[0], gallery, THRESHOLD, margin=MARGIN))
    batch_peak = peak_bytes(
        lambda: identify_many(probes[:batch], gallery, THRESHOLD, margin=MARGIN)
    )

    fast = identify_many(probes[:check], gallery, THRESHOLD, margin=MARGIN)
    mismatches = 0
    max_diff = 0.0
    for probe, got in zip(probes[:check], fast, strict=True):
        ref = reference_identify(probe, gallery, THRESHOLD, margin=MARGIN)
        diff = abs(got.distance - ref.distance)
        max_diff = max(max_diff, diff)
        if (got.person, got.reason) != (ref.person, ref.reason) or diff > 1e-6:
            mismatches += 1
    near = identify_many(probes[0:check:2], gallery, THRESHOLD, margin=MARGIN)
    return {
        "templates": gallery.template_count,
        "people": len(gallery),
        "templates_per_person": per_person,
        "build_s": round(build_s, 3),
        "gallery_mb": round(gallery_bytes / 2**20, 2),
        "single_ms_median": 1e3 * statistics.median(single),
        "single_ms_p95": 1e3 * p95(single),
        "single_runs": len(single),
        "batch": batch,
        "batch_ms_median": 1e3 * statistics.median(batched),
        "batch_per_probe_ms": 1e3 * statistics.median(batched) / batch,
        "batch_runs": len(batched),
        "single_peak_extra_mb": round(single_peak / 2**20, 2),
        "batch_peak_extra_mb": round(batch_peak / 2**20, 2),
        "checked_probes": check,
        "reference_mismatches": mismatches,
        "reference_max_abs_diff": max_diff,
        "enrolled_probes_matched": sum(r.matched for r in near),
        "enrolled_probes_checked": len(near),
    }


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'templates':>10} {'people':>8} {'MB':>7} {'1 probe ms':>11} {'p95':>8} "
        f"{'batch ms':>9} {'/probe ms':>10} {'peak MB':>8} {'ref ok':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ok = f"{r['checked_probes'] - r['reference_mismatches']}/{r['checked_probes']}"
        lines.append(
            f"{r['templates']:>10,} {r['people']:>8,} {r['gallery_mb']:>7.1f} "
            f"{r['single_ms_median']:>11.3f} {r['single_ms_p95']:>8.3f} "
            f"{r['batch_ms_median']:>9.2f} {r['batch_per_probe_ms']:>10.3f} "
            f"{r['batch_peak_extra_mb']:>8.1f} {ok:>7}"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Latency per probe (single, batched) and memory against the gallery size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["templates"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(sizes, [r["single_ms_median"] for r in rows], marker="o", label="one probe")
    ax1.plot(sizes, [r["batch_per_probe_ms"] for r in rows], marker="o",
             label=f"per probe in a batch of {rows[0]['batch']}")
    ax1.set_ylabel("ms per probe (median)")
    ax1.set_title("identify latency")
    ax2.plot(sizes, [r["gallery_mb"] for r in rows], marker="o", label="gallery")
    ax2.plot(sizes, [r["batch_peak_extra_mb"] for r in rows], marker="o",
             label="peak extra, one batched query")
    ax2.set_ylabel("MB")
    ax2.set_title("memory")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("templates in the gallery")
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def updates_main(args: argparse.Namespace) -> int:
    from gallery_updates import bench_updates
    from gallery_updates import table as updates_table

    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    else:
        sizes = SMOKE_SIZES if args.smoke else UPDATE_SIZES
    changes, seconds = (10, 1.0) if args.smoke else (200, 10.0)
    rows = []
    for size in sizes:
        log.info("gallery updates at %d templates ...", size)
        rows.append(bench_updates(
            size, per_person=args.per_person, changes=changes, seconds=seconds,
            rate=args.change_rate, port=args.redis_port,
        ))
    doc = {
        "benchmark": "gallery_updates",
        "smoke": args.smoke,
        "dim": DIM,
        "synthetic": "random 128-d unit vectors",
        "environment": environment(),
        "machine": machine_facts(),
        "results": rows,
    }
    out = args.out if args.out != DEFAULT_OUT else UPDATES_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"machine: {describe(doc['machine'])}")
    print("times in ms unless said; enrol/revoke: refresh() after one change; decide: "
          f"catch-up + threshold + 1:K search, quiet and with {args.change_rate:g} changes/s")
    print(updates_table(rows))
    print(f"wrote {out}")
    wrong = sum(r["wrong"] + r["reloads_after_start"] for r in rows)
    if wrong:
        print(f"error: {wrong} wrong answer(s) or unexpected reload(s)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds in all")
    parser.add_argument("--sizes", help="comma-separated template counts")
    parser.add_argument("--per-person", type=int, default=3, help="templates per person")
    parser.add_argument("--batch", type=int, default=64, help="probes per identify_many call")
    parser.add_argument("--check", type=int, default=None, help="probes checked by the oracle")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--updates", action="store_true",
                        help="reload vs incremental apply of the matcher's gallery")
    parser.add_argument("--redis-port", type=int, default=29790, help="--updates: its Redis")
    parser.add_argument("--change-rate", type=float, default=20.0,
                        help="--updates: enrolments + revocations per second while deciding")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.updates:
        logging.getLogger("services").setLevel(logging.WARNING)  # a line per change otherwise
        return updates_main(args)

    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    else:
        sizes = SMOKE_SIZES if args.smoke else DEFAULT_SIZES
    repeats, min_seconds = (5, 0.0) if args.smoke else (30, 1.0)
    batch = min(args.batch, 16) if args.smoke else args.batch
    rows = []
    for size in sizes:
        check = args.check if args.check is not None else (4 if size >= 500_000 else 8)
        log.info("gallery of %d templates ...", size)
        rows.append(
            bench_size(
                size,
                per_person=args.per_person,
                batch=batch,
                repeats=repeats,
                min_seconds=min_seconds,
                check=check,
            )
        )
    doc = {
        "benchmark": "identify",
        "smoke": args.smoke,
        "dim": DIM,
        "threshold": THRESHOLD,
        "margin": MARGIN,
        "environment": environment(),
        "machine": machine_facts(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"machine: {describe(doc['machine'])}")
    print(table(rows))
    print(f"wrote {args.out}")
    png = args.out.with_suffix(".png")
    plot(rows, png, f"{doc['machine']['cpu_model']}, numpy {np.__version__}")
    print(f"wrote {png}")
    bad = sum(r["reference_mismatches"] for r in rows)
    if bad:
        print(f"error: {bad} probe(s) disagree with reference_identify", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
