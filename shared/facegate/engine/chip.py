"""Aligned 150x150 face chips, exactly as dlib's ``get_face_chip`` cuts them.

A port of ``get_face_chip_details(shape, 150, 0.25)`` and
``extract_image_chips`` (dlib/image_transforms/interpolation.h) for 5-point
landmarks:

1. The 5-point template (unit square) goes to chip pixels by
   ``p -> ((0.25 + p) / 1.5) * 150``; a similarity transform (Umeyama, no
   reflection) maps it onto the landmarks. Its rotation is the chip's angle,
   its scale ``s`` gives the source rectangle: centred on the image of the
   chip centre ``(75, 75)``, ``150*s`` pixels wide (dlib's ``centered_drect``).
2. Large faces are first shrunk with ``pyramid_down<2>`` (separable
   ``[1 4 6 4 1]`` filter, integer sums, ``// 256``; output
   ``((H-3)//2, (W-3)//2)``; coordinates ``p/2 - (1.25, 0.75)``) for as long
   as the next level's rectangle still has more than 150*150 pixels. Only a
   crop of the image around the face (grown by 2, 6, 14... pixels) is
   filtered, and sampling is relative to that crop, as in dlib.
3. Each chip pixel maps (affine: the rotated rectangle's corners) to a source
   point, sampled bilinearly per channel in double and truncated to uint8; a
   pixel is 0 when any of its 2x2 source neighbours lies outside the crop.

``sizes`` (second output of :func:`extract_chips`): the side, in source-image
pixels, of the square region the chip covers (``150 * s``; the face region
including the padding, about 3.3x the outer-eye-corner distance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facegate.engine.shape_predictor import similarity_transform
from facegate.engine.types import Chips, Image

F64 = npt.NDArray[np.float64]

CHIP_SIZE = 150
CHIP_PADDING = 0.25

TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)
"""dlib's mean 5-point face (parts in the 5-point model's order), unit square."""


@dataclass(frozen=True)
class Rect:
    """dlib's ``drectangle``: inclusive bounds, ``width = right - left + 1``."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def is_empty(self) -> bool:
        return self.top > self.bottom or self.left > self.right

    @property
    def width(self) -> float:
        return 0.0 if self.is_empty else self.right - self.left + 1

    @property
    def height(self) -> float:
        return 0.0 if self.is_empty else self.bottom - self.top + 1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)

    def down(self) -> Rect:
        """``pyramid_down<2>::rect_down``."""
        return Rect(
            self.left / 2.0 - 1.25,
            self.top / 2.0 - 0.75,
            self.right / 2.0 - 1.25,
            self.bottom / 2.0 - 0.75,
        )

    def rounded(self) -> tuple[int, int, int, int]:
        """dlib's ``drectangle`` to ``rectangle`` conversion: ``floor(x + 0.5)``."""
        return (
            math.floor(self.left + 0.5),
            math.floor(self.top + 0.5),
            math.floor(self.right + 0.5),
            math.floor(self.bottom + 0.5),
        )


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: the source rectangle, its rotation, the chip size."""

    rect: Rect
    angle: float
    rows: int
    cols: int

    @property
    def source_size(self) -> float:
        """Side in source pixels of the square region the chip covers."""
        return self.rect.width


def face_chip_details(
    landmarks: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> ChipDetails:
    """``get_face_chip_details`` for dlib's 5 landmarks ``(5, 2)`` (x, y)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected (5, 2) landmarks, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks must be finite")
    if size <= 0 or padding < 0:
        raise ValueError("size must be positive and padding non-negative")
    template = ((padding + TEMPLATE_5) / (2 * padding + 1)) * size
    m, b = similarity_transform(template, points)
    angle = math.atan2(m[1, 0], m[0, 0])
    scale = math.sqrt(m[0, 0] * m[0, 0] + m[1, 0] * m[1, 0])
    half = size / 2.0
    cx = (m[0, 0] * half + m[0, 1] * half) + b[0]
    cy = (m[1, 0] * half + m[1, 1] * half) + b[1]
    # centered_drect(centre, size*scale, size*scale)
    w = size * scale - 1
    h = size * scale - 1
    rect = Rect(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return ChipDetails(rect=rect, angle=angle, rows=size, cols=size)


def pyramid_down2(image: Image) -> Image:
    """dlib's ``pyramid_down<2>`` on an RGB image (exact integer arithmetic)."""
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return np.zeros((0, 0, 3), dtype=np.uint8)
    out_cols = (cols - 3) // 2
    out_rows = (rows - 3) // 2
    x = image.astype(np.uint16)  # as dlib: 16 * 16 * 255 = 65280 fits
    end = 2 * out_cols
    # row filter at columns 2c .. 2c+4
    tmp = (
        x[:, 0:end:2]
        + 4 * x[:, 1 : end + 1 : 2]
        + 6 * x[:, 2 : end + 2 : 2]
        + 4 * x[:, 3 : end + 3 : 2]
        + x[:, 4 : end + 4 : 2]
    )
    # column filter centred on rows 2, 4, ..., one output row each
    end = 2 * out_rows
    acc = (
        tmp[0:end:2]
        + 4 * tmp[1 : end + 1 : 2]
        + 6 * tmp[2 : end + 2 : 2]
        + 4 * tmp[3 : end + 3 : 2]
        + tmp[4 : end + 4 : 2]
    )
    down: Image = (acc // 256).astype(np.uint8)
    return down


def _rotate(center: tuple[float, float], x: float, y: float, cos_a: float, sin_a: float) -> F64:
    """``rotate_point(center, p, angle)``."""
    dx = x - center[0]
    dy = y - center[1]
    return np.array([cos_a * dx - sin_a * dy + center[0], sin_a * dx + cos_a * dy + center[1]])


def _bilinear(source: Image, sx: F64, sy: F64) -> npt.NDArray[np.uint8]:
    """dlib's ``interpolate_bilinear`` for rgb pixels at points ``(sx, sy)``;
    0 where a 2x2 neighbour is outside ``source``."""
    rows, cols = source.shape[:2]
    if rows == 0 or cols == 0:
        return np.zeros((*sx.shape, 3), dtype=np.uint8)
    left = np.floor(sx).ravel()
    top = np.floor(sy).ravel()
    ok = (left >= 0) & (top >= 0) & (left + 1 < cols) & (top + 1 < rows)
    base = np.where(ok, top * cols + left, 0).astype(np.intp)
    step_x = ok.astype(np.intp)  # neighbours only where all four are inside
    step_y = step_x * cols
    planes = np.ascontiguousarray(source.transpose(2, 0, 1)).reshape(3, -1)
    tl = planes.take(base, axis=1)
    tr = planes.take(base + step_x, axis=1)
    bl = planes.take(base + step_y, axis=1)
    br = planes.take(base + step_y + step_x, axis=1)
    lr = sx.ravel() - left
    tb = sy.ravel() - top
    one_lr = 1 - lr
    # dlib's expression, evaluated in the same order in double:
    # (1-tb)*((1-lr)*tl + lr*tr) + tb*((1-lr)*bl + lr*br)
    upper = one_lr * tl
    upper += lr * tr
    upper *= 1 - tb
    lower = one_lr * bl
    lower += lr * br
    lower *= tb
    upper += lower
    upper *= ok
    out: npt.NDArray[np.uint8] = upper.astype(np.uint8)  # truncation, as dlib's assign_pixel
    return np.ascontiguousarray(out.T).reshape(*sx.shape, 3)


def _basic_extract(image: Image, rect: Rect) -> Image:
    """``basic_extract_image_chip``: a plain copy, zero outside the image."""
    left, top, right, bottom = rect.rounded()
    out = np.zeros((bottom - top + 1, right - left + 1, 3), dtype=np.uint8)
    rows, cols = image.shape[:2]
    y0, y1 = max(top, 0), min(bottom, rows - 1)
    x0, x1 = max(left, 0), min(right, cols - 1)
    if y0 <= y1 and x0 <= x1:
        out[y0 - top : y1 - top + 1, x0 - left : x1 - left + 1] = image[y0 : y1 + 1, x0 : x1 + 1]
    return out


def extract_chip(image: Image, details: ChipDetails) -> Image:
    """``extract_image_chip(img, details, chip)`` with bilinear interpolation."""
    rect = details.rect
    rows, cols = details.rows, details.cols
    if details.angle == 0 and rows == rect.height and cols == rect.width:
        return _basic_extract(image, rect)
    chip_area = rows * cols
    img_rows, img_cols = image.shape[:2]

    # pyramid depth and the crop around the (rotated) rectangle
    depth = 0
    grow = 2.0
    down = rect.down()
    while down.area > chip_area:
        down = down.down()
        depth += 1
        grow = grow * 2 + 2
    cos_a = math.cos(details.angle)
    sin_a = math.sin(details.angle)
    centre = rect.center
    corners = np.stack(
        [
            _rotate(centre, rect.left, rect.top, cos_a, sin_a),
            _rotate(centre, rect.right, rect.top, cos_a, sin_a),
            _rotate(centre, rect.left, rect.bottom, cos_a, sin_a),
            _rotate(centre, rect.right, rect.bottom, cos_a, sin_a),
        ]
    )
    crop = Rect(
        max(float(corners[:, 0].min()) - grow, 0.0),
        max(float(corners[:, 1].min()) - grow, 0.0),
        min(float(corners[:, 0].max()) + grow, float(img_cols - 1)),
        min(float(corners[:, 1].max()) + grow, float(img_rows - 1)),
    )
    bl, bt, br, bb = crop.rounded()
    if bl > br or bt > bb:  # the face lies wholly outside the image
        bl, bt, br, bb = 0, 0, -1, -1
    source: Image = image[bt : bb + 1, bl : br + 1]
    for _ in range(depth):
        source = pyramid_down2(source)

    # the rectangle in the coordinates of the level sampled from
    local = Rect(rect.left - bl, rect.top - bt, rect.right - bl, rect.bottom - bt)
    while local.down().area > chip_area:
        local = local.down()
    centre = local.center
    tl = _rotate(centre, local.left, local.top, cos_a, sin_a)
    tr = _rotate(centre, local.right, local.top, cos_a, sin_a)
    bl_corner = _rotate(centre, local.left, local.bottom, cos_a, sin_a)
    # affine map chip (0,0), (cols-1,0), (0,rows-1) -> tl, tr, bl
    mx = (tr - tl) / max(cols - 1, 1)
    my = (bl_corner - tl) / max(rows - 1, 1)
    c = np.arange(cols, dtype=np.float64)[None, :]
    r = np.arange(rows, dtype=np.float64)[:, None]
    sx = (mx[0] * c + my[0] * r) + tl[0]
    sy = (mx[1] * c + my[1] * r) + tl[1]
    return _bilinear(source, sx, sy)


def extract_chips(
    image: Image, landmarks_list: Sequence[npt.NDArray[np.float32]]
) -> tuple[Chips, npt.NDArray[np.float32]]:
    """Chips ``(N, 150, 150, 3)`` uint8 and source sizes ``(N,)`` float32 for
    each face's 5 landmarks (see the module docstring)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    chips = np.zeros((len(landmarks_list), CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    sizes = np.zeros((len(landmarks_list),), dtype=np.float32)
    for i, landmarks in enumerate(landmarks_list):
        details = face_chip_details(landmarks)
        chips[i] = extract_chip(image, details)
        sizes[i] = details.source_size
    return chips, sizes
