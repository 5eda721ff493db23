"""Faces from image files: batched encoding with progress, choosing the face
that matters in a photo, and the seeds' "database" (one folder per person).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError, ImageError, NoFaceError, SeveralFacesError
from facegate.engine.images import load_image_file
from facegate.engine.types import Face, FaceEncoder, Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

Progress = Callable[[int], None]


@dataclass(frozen=True)
class EncodedFile:
    """One image file after the engine: its faces, or why it has none."""

    path: Path
    shape: tuple[int, int] | None
    faces: tuple[Face, ...]
    error: str | None = None


def central_face(faces: Sequence[Face], shape: tuple[int, int]) -> Face | None:
    """The face a photo is "of": largest, discounted by distance from the centre.

    LFW-style portraits have one intended face near the centre and sometimes
    bystanders; a door snapshot has the person at the door largest.
    """
    if not faces:
        return None
    h, w = shape
    cx, cy = w / 2.0, h / 2.0

    def score(face: Face) -> float:
        fx, fy = face.box.center
        off = float(np.hypot(fx - cx, fy - cy)) / max(face.size, 1.0)
        return face.size / (1.0 + off)

    return max(faces, key=score)


def single_face(faces: Sequence[Face], *, where: str, min_ratio: float = 0.6) -> Face:
    """The one face of an enrolment photo. Several comparable faces are an
    error (we could enrol the wrong person); a much smaller second face in the
    background (under ``min_ratio`` of the largest) is tolerated."""
    if not faces:
        raise NoFaceError(f"{where}: no face found")
    ordered = sorted(faces, key=lambda f: f.size, reverse=True)
    if len(ordered) > 1 and ordered[1].size >= min_ratio * ordered[0].size:
        raise SeveralFacesError(f"{where}: {len(ordered)} faces found; use a photo of one person")
    return ordered[0]


def encode_files(
    engine: FaceEncoder,
    paths: Sequence[Path],
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[EncodedFile]:
    """Decode and encode image files in batches; unreadable files are
    reported in ``error`` rather than raised."""
    out: list[EncodedFile] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images: list[Image] = []
        slots: list[int] = []
        results: list[EncodedFile | None] = [None] * len(chunk)
        for i, path in enumerate(chunk):
            try:
                images.append(load_image_file(str(path)))
                slots.append(i)
            except ImageError as exc:
                results[i] = EncodedFile(path, None, (), str(exc))
        for i, image, faces in zip(slots, images, engine.encode_images(images), strict=True):
            results[i] = EncodedFile(chunk[i], (image.shape[0], image.shape[1]), tuple(faces))
        out.extend(r for r in results if r is not None)
        if progress is not None:
            progress(len(chunk))
    return out


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def database_folders(root: Path) -> dict[str, list[Path]]:
    """``root/<person>/<images>``: the seeds' database, several images each."""
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder (expected one sub-folder of images per person)")
    people = {
        d.name: image_files(d)
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }
    people = {k: v for k, v in people.items() if v}
    if not people:
        raise ConfigError(f"{root}: no person folders with images in it")
    return people


def encode_database(
    engine: FaceEncoder,
    root: Path,
    *,
    only: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, npt.NDArray[np.float32]], list[str]]:
    """Templates per person from a database folder, and the warnings for
    images that were skipped (no face, several faces, unreadable)."""
    people = database_folders(root)
    if only is not None:
        wanted = set(only)
        missing = wanted - set(people)
        if missing:
            raise ConfigError(f"{root}: no folder for {sorted(missing)}")
        people = {k: v for k, v in people.items() if k in wanted}
    flat = [(name, path) for name, paths in people.items() for path in paths]
    encoded = encode_files(engine, [p for _, p in flat], progress=progress)
    templates: dict[str, list[npt.NDArray[np.float32]]] = {name: [] for name in people}
    warnings: list[str] = []
    for (name, _), item in zip(flat, encoded, strict=True):
        if item.error:
            warnings.append(item.error)
            continue
        try:
            face = single_face(item.faces, where=str(item.path))
        except (NoFaceError, SeveralFacesError) as exc:
            warnings.append(str(exc))
            continue
        templates[name].append(face.encoding)
    result = {name: np.stack(encs).astype(np.float32) for name, encs in templates.items() if encs}
    for name in templates:
        if name not in result:
            warnings.append(f"{name}: no usable image, left out of the database")
    return result, warnings


@dataclass(frozen=True)
class PairDistances:
    """Distances for image pairs; ``inf`` where either image had no usable face."""

    distances: npt.NDArray[np.float64]
    no_face: tuple[Path, ...]
    unreadable: tuple[Path, ...]


def pair_distances(
    engine: FaceEncoder,
    pairs: Sequence[tuple[Path, Path]],
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> PairDistances:
    """Encode every distinct image once (the face nearest the centre), then
    the L2 distance of each pair."""
    unique = sorted({p for pair in pairs for p in pair})
    encoded = encode_files(engine, unique, batch_size=batch_size, progress=progress)
    table: dict[Path, npt.NDArray[np.float32]] = {}
    no_face: list[Path] = []
    unreadable: list[Path] = []
    for item in encoded:
        if item.error or item.shape is None:
            unreadable.append(item.path)
            continue
        face = central_face(item.faces, item.shape)
        if face is None:
            no_face.append(item.path)
        else:
            table[item.path] = face.encoding
    out = np.full(len(pairs), np.inf, dtype=np.float64)
    for i, (a, b) in enumerate(pairs):
        if a in table and b in table:
            out[i] = float(np.linalg.norm(table[a].astype(np.float64) - table[b]))
    return PairDistances(out, tuple(no_face), tuple(unreadable))
