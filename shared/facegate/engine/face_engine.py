"""The face engine: detector -> 5-point landmarks -> aligned chips -> encoder.

Pure composition over the small interfaces in :mod:`facegate.engine.types`;
the real parts are wired by :func:`facegate.engine.factory.build_face_encoder`.
One call handles a whole batch of images: detection runs batched, every chip
of every image goes through the network in one (padded, fixed-size) batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.engine.types import (
    Box,
    ChipEmbedder,
    Chips,
    Encodings,
    Face,
    FaceDetector,
    Image,
    LandmarkPredictor,
)

log = logging.getLogger(__name__)

ChipExtractor = Callable[
    [Image, Sequence[npt.NDArray[np.float32]]],
    tuple[Chips, npt.NDArray[np.float32]],
]
"""``(image, landmarks list) -> (chips (N,150,150,3) uint8, source sizes (N,) float32)``."""


@dataclass(frozen=True)
class EngineConfig:
    """How faces become encodings.

    ``mirror_average``: the encoding is the mean of the chip's and its mirror
    image's descriptors (about +0.2 points of LFW accuracy, twice the network
    work). ``max_faces``: per image, largest faces first; more are dropped.
    ``min_face_size``: faces whose chip region is smaller (source pixels) are
    dropped as unusable.
    """

    mirror_average: bool = True
    max_faces: int = 8
    min_face_size: float = 0.0

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError("max_faces must be >= 1")
        if self.min_face_size < 0:
            raise ValueError("min_face_size must be >= 0")


class FaceEngine:
    """Implements :class:`facegate.engine.types.FaceEncoder`."""

    def __init__(
        self,
        detector: FaceDetector,
        predictor: LandmarkPredictor,
        extract: ChipExtractor,
        embedder: ChipEmbedder,
        config: EngineConfig | None = None,
        fallback_detector: FaceDetector | None = None,
    ) -> None:
        self.detector = detector
        self.predictor = predictor
        self.extract = extract
        self.embedder = embedder
        self.config = config or EngineConfig()
        self.fallback_detector = fallback_detector
        suffix = "+mirror" if self.config.mirror_average else ""
        self.model_id = f"{embedder.model_id}{suffix}"
        self.dimension = embedder.dimension

    def embed_chips(self, chips: Chips) -> Encodings:
        """Encodings of aligned chips, mirror-averaged when configured."""
        if chips.ndim != 4 or chips.shape[3] != 3 or chips.dtype != np.uint8:
            raise ValueError(f"chips must be (N, H, W, 3) uint8, got {chips.shape} {chips.dtype}")
        n = chips.shape[0]
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not self.config.mirror_average:
            return self.embedder.embed_chips(chips)
        both = np.concatenate([chips, chips[:, :, ::-1, :]], axis=0)
        enc = self.embedder.embed_chips(np.ascontiguousarray(both))
        return ((enc[:n] + enc[n:]) / 2.0).astype(np.float32)

    def detect(self, images: Sequence[Image]) -> list[list[Box]]:
        """Face boxes per image (with the fallback detector for images where
        the main one finds none, when one is configured)."""
        boxes = self.detector.detect(images)
        if self.fallback_detector is not None:
            empty = [i for i, b in enumerate(boxes) if not b]
            if empty:
                retry = self.fallback_detector.detect([images[i] for i in empty])
                for i, found in zip(empty, retry, strict=True):
                    boxes[i] = found
        return boxes

    def encode_images(
        self, images: Sequence[Image], *, timings: dict[str, float] | None = None
    ) -> list[list[Face]]:
        """Faces with encodings per image, largest first. ``timings``, when
        given, receives the wall-clock times ``detected`` (boxes found) and
        ``embedded`` (encodings done)."""
        if not images:
            return []
        all_boxes = self.detect(images)
        if timings is not None:
            timings["detected"] = time.time()
        chips_parts: list[Chips] = []
        meta: list[tuple[int, Box, npt.NDArray[np.float32], float]] = []
        for index, (image, boxes) in enumerate(zip(images, all_boxes, strict=True)):
            if not boxes:
                continue
            ordered = sorted(boxes, key=lambda b: b.width * b.height, reverse=True)
            ordered = ordered[: self.config.max_faces]
            landmarks = [self.predictor.predict(image, box) for box in ordered]
            chips, sizes = self.extract(image, landmarks)
            for box, marks, chip, size in zip(ordered, landmarks, chips, sizes, strict=True):
                if size < self.config.min_face_size:
                    continue
                chips_parts.append(chip[None])
                meta.append((index, box, marks, float(size)))
        results: list[list[Face]] = [[] for _ in images]
        if not meta:
            if timings is not None:
                timings["embedded"] = time.time()
            return results
        encodings = self.embed_chips(np.concatenate(chips_parts, axis=0))
        if timings is not None:
            timings["embedded"] = time.time()
        for (index, box, marks, size), enc in zip(meta, encodings, strict=True):
            results[index].append(Face(box=box, landmarks=marks, size=size, encoding=enc))
        return results

    def warm_up(self) -> None:
        """Run every compiled path once so the first real request is not slow."""
        warm = getattr(self.embedder, "warm_up", None)
        if callable(warm):
            warm()
        grey = np.full((160, 160, 3), 127, dtype=np.uint8)
        self.detector.detect([grey])
