"""Plain data types and interfaces of the face engine (no TensorFlow here).

Coordinates are image pixels, x to the right, y down, float. Images are
``uint8`` arrays of shape ``(H, W, 3)`` in RGB order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
"""An RGB image, ``(H, W, 3)`` uint8."""

Chips = npt.NDArray[np.uint8]
"""Aligned face chips, ``(N, 150, 150, 3)`` uint8 RGB."""

Encodings = npt.NDArray[np.float32]
"""Face encodings, ``(N, D)`` float32 (D = 128 for the dlib ResNet)."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box with the detector's confidence."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)


@dataclass(frozen=True)
class Face:
    """One face found in an image.

    ``landmarks`` are dlib's five points, ``(5, 2)`` float32: right-eye outer
    corner, right-eye inner corner, left-eye outer corner, left-eye inner
    corner, base of the nose (dlib's order, "right" meaning the subject's).
    ``size`` is the face's scale in pixels (the side of the square region the
    chip was cut from); small faces are less reliable.
    """

    box: Box
    landmarks: npt.NDArray[np.float32]
    size: float
    encoding: npt.NDArray[np.float32]

    @property
    def quality(self) -> float:
        """A 0..1 figure: detector confidence damped for faces under 80 px."""
        return float(self.box.score) * float(min(1.0, self.size / 80.0))


@runtime_checkable
class FaceDetector(Protocol):
    """Finds face boxes in a batch of images."""

    def detect(self, images: Sequence[Image]) -> list[list[Box]]: ...


@runtime_checkable
class LandmarkPredictor(Protocol):
    """Predicts the five dlib landmarks inside a face box."""

    def predict(self, image: Image, box: Box) -> npt.NDArray[np.float32]: ...


@runtime_checkable
class ChipEmbedder(Protocol):
    """Maps aligned 150x150 chips to encodings."""

    model_id: str
    dimension: int

    def embed_chips(self, chips: Chips) -> Encodings: ...


@runtime_checkable
class FaceEncoder(Protocol):
    """Photo in, faces with encodings out: what the encoder service needs."""

    model_id: str
    dimension: int

    def encode_images(
        self, images: Sequence[Image], *, timings: dict[str, float] | None = None
    ) -> list[list[Face]]: ...

    def embed_chips(self, chips: Chips) -> Encodings: ...
