"""Encodings of a whole folder of people, computed once and cached.

A folder of people (``<root>/<person>/<images>``, LFW's layout) is encoded
image by image (the face a photo is "of": :func:`~facegate.engine.folders.
central_face`) and kept as one ``.npz`` under the user cache
(``<cache>/encodings/``), keyed by what decides the result: the encoder's
identity (model id and engine configuration, detector settings) and every
file's relative path, size and modification time. A second run over the
same folder with the same engine loads the file in well under a second;
any change to the folder or the engine computes afresh.

:class:`FolderEncodings` is pure data (no engine): the open-set evaluation
(:mod:`facegate.core.openset`) and the benchmarks read it. Images without a
usable face keep a row of NaN (``valid`` is ``False`` there), so every file
keeps its place and its person.

:func:`cached_folder_encodings` takes any ``encode(paths) -> rows`` callable,
so another pipeline (``bench/openset.py`` runs face_recognition beside ours)
caches its encodings the same way under its own key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.core.errors import ConfigError
from facegate.engine.folders import Progress, central_face, database_folders, encode_files
from facegate.engine.types import FaceEncoder

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Layout version of the cached ``.npz`` files."""

F32 = npt.NDArray[np.float32]

Encode = Callable[[Sequence[Path], Progress | None], tuple[F32, list[str]]]
"""``(paths, progress) -> (rows (n, d) with NaN rows for no face, problems)``."""


@dataclass(frozen=True)
class FolderEncodings:
    """One encoding per image file of a folder of people.

    ``files[i]`` (relative to ``root``) belongs to ``people[labels[i]]``;
    ``encodings[i]`` is NaN where the image had no usable face.
    """

    root: Path
    people: tuple[str, ...]
    files: tuple[str, ...]
    labels: npt.NDArray[np.int64]
    encodings: F32
    encoder_id: str
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """Rows with a usable face."""
        out: npt.NDArray[np.bool_] = np.asarray(np.isfinite(self.encodings).all(axis=1), bool)
        return out

    @property
    def failed_files(self) -> list[str]:
        return [f for f, ok in zip(self.files, self.valid, strict=True) if not ok]

    def __len__(self) -> int:
        return len(self.files)


def folder_listing(root: Path) -> tuple[tuple[str, ...], list[Path], npt.NDArray[np.int64]]:
    """``(people, image paths, person index per path)`` of ``root``."""
    folders = database_folders(root)
    people = tuple(folders)
    paths = [p for name in people for p in folders[name]]
    labels = np.repeat(np.arange(len(people), dtype=np.int64), [len(folders[n]) for n in people])
    return people, paths, labels


def cache_key(encoder_id: str, root: Path, paths: Sequence[Path]) -> str:
    """A digest of the encoder's identity and every file's path, size and
    modification time (so an edited folder is encoded afresh)."""
    h = hashlib.sha256()
    h.update(f"format {CACHE_FORMAT}\nencoder {encoder_id}\n".encode())
    for path in paths:
        st = path.stat()
        h.update(f"{path.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _load(path: Path, expect_files: tuple[str, ...]) -> tuple[F32, tuple[str, ...]] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            files = tuple(str(f) for f in data["files"])
            encodings = np.asarray(data["encodings"], dtype=np.float32)
            problems = tuple(str(p) for p in data["problems"])
    except (OSError, KeyError, ValueError) as exc:
        log.warning("ignoring unreadable encodings cache %s (%s)", path, exc)
        return None
    if files != expect_files or encodings.shape[0] != len(files):
        log.warning("ignoring encodings cache %s: it lists other files", path)
        return None
    return encodings, problems


def cached_folder_encodings(
    root: Path,
    encoder_id: str,
    encode: Encode,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> FolderEncodings:
    """Every image of ``root`` encoded by ``encode`` (called only when the
    cache has no entry for this encoder and these files). ``progress(total)``
    may return a tick function for a progress bar. ``cache_dir=None`` uses
    ``<user cache>/encodings``."""
    if cache_dir is None:
        from facegate.runtime.paths import cache_root

        cache_dir = cache_root() / "encodings"
    people, paths, labels = folder_listing(root)
    files = tuple(p.relative_to(root).as_posix() for p in paths)
    key = cache_key(encoder_id, root, paths)
    target = cache_dir / f"{root.name or 'folder'}-{key[:24]}.npz"
    loaded = _load(target, files) if target.is_file() else None
    if loaded is not None:
        encodings, problems = loaded
        log.info("encodings of %s from %s", root, target)
    else:
        tick = progress(len(paths)) if progress is not None else None
        encodings, problem_list = encode(paths, tick)
        if encodings.shape[0] != len(paths):
            raise ValueError(f"encoder returned {encodings.shape[0]} rows for {len(paths)} images")
        problems = tuple(problem_list)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial.npz")
            np.savez_compressed(
                partial,
                files=np.array(files),
                encodings=encodings.astype(np.float32),
                problems=np.array(problems, dtype=str),
                meta=np.array(json.dumps({"encoder": encoder_id, "root": str(root)})),
            )
            partial.replace(target)
        except OSError as exc:
            log.warning("could not cache the encodings in %s (%s)", target, exc)
    return FolderEncodings(
        root, people, files, labels, encodings.astype(np.float32), encoder_id, problems
    )


def engine_identity(engine: FaceEncoder) -> str:
    """What makes two runs of an engine give the same encodings: its model
    id (network and engine configuration) and its detectors' settings."""
    parts = [engine.model_id]
    for name in ("detector", "fallback_detector"):
        detector = getattr(engine, name, None)
        config = getattr(detector, "config", None)
        if detector is None:
            parts.append(f"{name}=none")
        elif dataclasses.is_dataclass(config) and not isinstance(config, type):
            fields = dataclasses.asdict(config)
            fields.pop("max_batch", None)  # how many images per call: not the result
            parts.append(f"{name}={sorted(fields.items())}")
        else:
            parts.append(f"{name}={config!r}")
    return ";".join(parts)


def engine_encode(engine: FaceEncoder, batch_size: int = 16) -> Encode:
    """The :data:`Encode` callable of the face engine: the central face of
    each image, NaN rows where none is usable."""

    def encode(paths: Sequence[Path], tick: Progress | None) -> tuple[F32, list[str]]:
        encoded = encode_files(engine, list(paths), batch_size=batch_size, progress=tick)
        found: list[F32 | None] = []
        problems: list[str] = []
        for item in encoded:
            face = None
            if item.error or item.shape is None:
                problems.append(item.error or f"{item.path}: unreadable")
            else:
                face = central_face(item.faces, item.shape)
                if face is None:
                    problems.append(f"{item.path}: no face found")
            found.append(None if face is None else face.encoding)
        dim = getattr(engine, "dimension", None) or next(
            (f.shape[0] for f in found if f is not None), 128
        )
        rows = np.full((len(paths), dim), np.nan, dtype=np.float32)
        for i, enc in enumerate(found):
            if enc is not None:
                rows[i] = enc
        return rows, problems

    return encode


def encode_folder(
    engine: FaceEncoder,
    root: Path,
    *,
    batch_size: int = 16,
    cache_dir: Path | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
) -> FolderEncodings:
    """:func:`cached_folder_encodings` with the face engine."""
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder (expected one sub-folder of images per person)")
    return cached_folder_encodings(
        root,
        engine_identity(engine),
        engine_encode(engine, batch_size),
        cache_dir=cache_dir,
        progress=progress,
    )


__all__ = [
    "CACHE_FORMAT",
    "FolderEncodings",
    "cache_key",
    "cached_folder_encodings",
    "encode_folder",
    "engine_encode",
    "engine_identity",
    "folder_listing",
]
