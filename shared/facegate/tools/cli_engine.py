"""``facegate encode | verify | identify | evaluate | calibrate``: the face
engine from the command line, on local files (no services needed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from facegate.core.errors import ConfigError, NoFaceError
from facegate.runtime.progress import progress_bar

DEFAULT_THRESHOLD = 0.6
"""dlib's own same-person distance for its ResNet (``facegate calibrate`` picks
one for a target false-accept rate)."""


def register(sub: Any) -> None:
    p = sub.add_parser("encode", help="print the faces and 128-d encodings found in images")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=cmd_encode)

    p = sub.add_parser("verify", help="is the person in IMAGE the claimed person? (1:1)")
    p.add_argument("image", type=Path, metavar="IMAGE")
    p.add_argument("--as", dest="name", required=True, metavar="NAME", help="claimed person")
    p.add_argument("--db", required=True, type=Path, metavar="DIR", help="one folder per person")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("identify", help="who is the person in IMAGE? (1:K)")
    p.add_argument("image", type=Path, metavar="IMAGE")
    p.add_argument("--db", required=True, type=Path, metavar="DIR", help="one folder per person")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--margin", type=float, default=0.0, help="required lead over the runner-up")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_identify)


def _engine() -> Any:
    from facegate.engine.factory import build_face_encoder

    return build_face_encoder()


def _probe(engine: Any, image: Path) -> tuple[Any, tuple[int, int]]:
    from facegate.engine.folders import central_face, encode_files

    if not image.is_file():
        raise ConfigError(f"{image}: no such file")
    (item,) = encode_files(engine, [image])
    if item.error:
        raise ConfigError(item.error)
    assert item.shape is not None
    face = central_face(item.faces, item.shape)
    if face is None:
        raise NoFaceError(f"{image}: no face found")
    return face, item.shape


def _emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc, indent=2) if args.json else text)


def cmd_encode(args: argparse.Namespace) -> int:
    from facegate.engine.folders import encode_files

    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    engine = _engine()
    with progress_bar(len(args.images), "encoding") as tick:
        items = encode_files(engine, list(args.images), progress=tick)
    docs = []
    status = 0
    for item in items:
        faces = [
            {
                "box": [round(v, 2) for v in (f.box.left, f.box.top, f.box.right, f.box.bottom)],
                "score": round(f.box.score, 4),
                "landmarks": np.round(f.landmarks, 2).tolist(),
                "size": round(f.size, 1),
                "quality": round(f.quality, 3),
                "encoding": [float(x) for x in f.encoding],
            }
            for f in item.faces
        ]
        docs.append({"image": str(item.path), "error": item.error, "faces": faces})
        if item.error:
            status = 1
            if not args.json:
                print(f"{item.path}: error: {item.error}", file=sys.stderr)
        elif not args.json:
            print(f"{item.path}: {len(faces)} face(s)")
            for i, f in enumerate(item.faces):
                head = " ".join(f"{x:+.3f}" for x in f.encoding[:4])
                print(
                    f"  face {i}: box {faces[i]['box']} size {f.size:.0f}px "
                    f"quality {f.quality:.2f} encoding [{head} ...] ({len(f.encoding)}-d)"
                )
    if args.json:
        print(json.dumps({"model": engine.model_id, "images": docs}))
    return status


def _database(engine: Any, root: Path, only: list[str] | None = None) -> dict[str, Any]:
    from facegate.engine.folders import database_folders, encode_database

    total = sum(len(v) for k, v in database_folders(root).items() if only is None or k in only)
    with progress_bar(total, "database") as tick:
        templates, warnings = encode_database(engine, root, only=only, progress=tick)
    for w in warnings:
        print(f"facegate: warning: {w}", file=sys.stderr)
    return templates


def cmd_verify(args: argparse.Namespace) -> int:
    from facegate.core.matching import verify

    engine = _engine()
    templates = _database(engine, args.db, only=[args.name])
    if args.name not in templates:
        raise ConfigError(f"{args.db / args.name}: no usable image of {args.name}")
    face, _ = _probe(engine, args.image)
    result = verify(face.encoding, templates[args.name], args.threshold)
    doc = {
        "image": str(args.image),
        "claimed": args.name,
        "match": bool(result.matched),
        "distance": float(result.distance),
        "threshold": args.threshold,
        "templates": len(templates[args.name]),
    }
    verdict = "it's" if result.matched else "it's not"
    _emit(
        args,
        doc,
        f"{verdict} {args.name} (distance {result.distance:.3f}, threshold {args.threshold})",
    )
    return 0 if result.matched else 3


def cmd_identify(args: argparse.Namespace) -> int:
    from facegate.core.matching import Gallery, identify

    engine = _engine()
    templates = _database(engine, args.db)
    face, _ = _probe(engine, args.image)
    gallery = Gallery.from_mapping(templates)
    result = identify(face.encoding, gallery, args.threshold, margin=args.margin)
    doc = {
        "image": str(args.image),
        "person": result.person if result.matched else None,
        "nearest": result.person,
        "distance": float(result.distance),
        "second_distance": float(result.second_distance),
        "reason": result.reason,
        "threshold": args.threshold,
    }
    if result.matched:
        text = f"{result.person} (distance {result.distance:.3f})"
    else:
        text = f"not in the database ({result.reason}; nearest distance {result.distance:.3f})"
    _emit(args, doc, text)
    return 0 if result.matched else 3
