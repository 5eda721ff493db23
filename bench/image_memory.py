"""Benchmark: what a decompression bomb costs the encoder, in memory.

The case from issue 8: a 6000 x 6000 PNG of one colour, 119,588 bytes
(116.8 KiB) on disk and 108 MB of RGB pixels once decoded; beside it a
PNG whose header declares 50000 x 50000, and two honest photos' sizes
(1920 x 1080 and 4000 x 3000 JPEGs) for comparison.

Two modes:

- ``--decode``: each case decoded by :func:`facegate.engine.images.decode_image`
  in a fresh Python process (no TensorFlow): the growth of the peak RSS
  (``ru_maxrss``) and of the RSS left after the call, and the outcome;
- default, ``--encoder``: a real stack of its own (Redis, SeaweedFS, ingest,
  one encoder with the real model, one matcher; ports ``--base-port`` .. +6,
  default 27430; state in a temporary folder) and an identify door; one
  normal photo warms the encoder up, then each case is uploaded through a
  presigned PUT ``--repeat`` times. For each upload: the encoder process's
  peak RSS during it (``/proc/<pid>/clear_refs`` reset before, ``VmHWM``
  after), its RSS 2 s after the decision, and the decision's reason.

Usage: ``python bench/image_memory.py [--decode] [--encoder] [--repeat 3]
[--base-port 27430] [--json out.json]``. Prints a table with the machine's
load average.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe, machine_facts

MiB = 2**20


def bomb_png(side: int = 6000) -> bytes:
    """One colour, ``side`` x ``side`` RGB: deflate packs it about 1000:1."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(out, "PNG")
    return out.getvalue()


def declared_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG header declaring ``width`` x ``height``, almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + \
        chunk(b"IEND", b"")


def photo_jpeg(width: int, height: int) -> bytes:
    """A noisy picture (a photo's entropy, no face) as a JPEG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(width * height)
    small = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


CASES: dict[str, tuple[str, Any]] = {
    "bomb-6000x6000.png": ("png", lambda: bomb_png(6000)),
    "declares-50000x50000.png": ("png", lambda: declared_png()),
    "photo-1920x1080.jpg": ("jpg", lambda: photo_jpeg(1920, 1080)),
    "photo-4000x3000.jpg": ("jpg", lambda: photo_jpeg(4000, 3000)),
}


# --------------------------------------------------------------------------- --decode


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _decode_child(path: str) -> None:
    """Run in a fresh interpreter: decode one file, print JSON."""
    from facegate.core.errors import ImageError
    from facegate.engine.images import decode_image

    data = Path(path).read_bytes()
    peak0, rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _rss_kib()
    t0 = time.perf_counter()
    try:
        outcome = "decoded {}x{}".format(*decode_image(data).shape[1::-1])
    except ImageError as exc:
        outcome = f"ImageError: {exc}"
    ms = (time.perf_counter() - t0) * 1000
    peak1, rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _rss_kib()
    print(json.dumps({"peak_growth_mib": (peak1 - peak0) / 1024,
                      "rss_growth_mib": (rss1 - rss0) / 1024, "ms": ms, "outcome": outcome}))


def run_decode(files: dict[str, bytes]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            path = Path(tmp) / name
            path.write_bytes(data)
            out = subprocess.run(
                [sys.executable, __file__, "--decode-child", str(path)],
                check=True, capture_output=True, text=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )
            rows.append({"case": name, "bytes": len(data), **json.loads(out.stdout)})
    return rows


# --------------------------------------------------------------------------- --encoder


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run_encoder(files: dict[str, tuple[str, bytes]], repeat: int, base_port: int) -> dict[str, Any]:
    import redis

    from facegate.adapters.redis_store import RedisStore
    from facegate.clients.camera import CameraClient
    from facegate.core.policy import DoorMode, DoorPolicy
    from facegate.tools.devstack import Stack, StackConfig
    from facegate.tools.samples import sample_faces_dir

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(StackConfig.for_tests(base_port, state_dir=Path(tmp), ready_timeout_s=300))
        stack.up()
        try:
            env = stack.env()
            client = redis.Redis.from_url(stack.config.redis_url, socket_timeout=30.0)
            store = RedisStore(client)
            store.set_door(DoorPolicy("bench", DoorMode.IDENTIFY, frozenset({"*"}), 0.6))
            camera = CameraClient(stack.config.ingest_url, env["FACEGATE_CAMERA_TOKEN"])
            pid = stack.running_pid("encoder-1")
            assert pid is not None

            def upload(ext: str, data: bytes) -> dict[str, Any]:
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM
                ticket = camera.presign("bench", "cam1", None, ext=ext)
                camera.put(ticket, data)
                deadline = time.monotonic() + 120
                while (wire := store.get_decision(ticket.upload_id)) is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no decision for {ticket.upload_id}")
                    time.sleep(0.05)
                peak = _status(pid, "VmHWM") / 1024
                time.sleep(2.0)
                return {"peak_mib": peak, "rss_after_mib": _status(pid, "VmRSS") / 1024,
                        "reason": json.loads(wire)["event"]["reason"]}

            warm = upload("jpg", (sample_faces_dir() / "obama3.jpg").read_bytes())
            idle = _status(pid, "VmRSS") / 1024
            rows = []
            for name, (ext, data) in files.items():
                for i in range(repeat):
                    rows.append({"case": name, "bytes": len(data), "try": i + 1,
                                 **upload(ext, data)})
            client.close()
            return {"idle_rss_mib": idle, "warm_up": warm, "uploads": rows}
        finally:
            stack.down()


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decode", action="store_true", help="decode only, no stack")
    parser.add_argument("--encoder", action="store_true", help="the real encoder (default)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=27430)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--decode-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.decode_child:
        _decode_child(args.decode_child)
        return 0
    names = [n for n in args.cases.split(",") if n]
    files = {n: (CASES[n][0], CASES[n][1]()) for n in names}
    facts = machine_facts()
    result: dict[str, Any] = {"machine": facts}
    print(f"# image memory ({describe(facts)})")
    if args.decode or not args.encoder:
        rows = run_decode({n: d for n, (_e, d) in files.items()})
        result["decode"] = rows
        print("\n## decode_image in a fresh process (no TensorFlow)")
        print(f"{'case':28} {'bytes':>9} {'peak +MiB':>10} {'kept +MiB':>10} {'ms':>7}  outcome")
        for r in rows:
            print(f"{r['case']:28} {r['bytes']:9d} {r['peak_growth_mib']:10.1f} "
                  f"{r['rss_growth_mib']:10.1f} {r['ms']:7.0f}  {r['outcome'][:60]}")
    if args.encoder or not args.decode:
        enc = run_encoder(files, args.repeat, args.base_port)
        result["encoder"] = enc
        print(f"\n## the encoder process (idle RSS after warm-up: {enc['idle_rss_mib']:.0f} MiB)")
        print(f"{'case':28} {'try':>3} {'peak MiB':>9} {'RSS after':>10}  reason")
        for r in enc["uploads"]:
            print(f"{r['case']:28} {r['try']:3d} {r['peak_mib']:9.0f} "
                  f"{r['rss_after_mib']:10.0f}  {r['reason']}")
    load = machine_facts()["load_average"]
    print(f"\nload average at the end: {load}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
