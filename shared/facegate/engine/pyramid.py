"""The detector's image pyramid for a whole batch, packed into one canvas.

MTCNN's first network (P-Net) is fully convolutional: it slides a 12-px
window over every level of every image's pyramid with a stride of 2. Instead
of one network call per level and image, every level of every image of a
batch is laid into one canvas (:func:`pack`), P-Net runs once over it, and
:func:`cell_owners` says which output cell belongs to which level: only
cells whose 12-px window lies wholly inside one level count, so nothing
straddling two levels is ever proposed.

Pure numpy (no TensorFlow): unit-tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PNET_CELL = 12
"""P-Net's window in pixels: the smallest face at scale 1."""

PNET_STRIDE = 2
"""P-Net's output cells are 2 px apart in its input."""

GRID_FACE = 40.0
"""The pyramid's scales lie on one grid, ``PNET_CELL / GRID_FACE *
scale_factor**k`` for whole ``k``: a larger smallest face only drops the
finest levels and never moves the others, so the faces found at door sizes
are those the full pyramid finds (LFW accuracy was measured on this grid)."""

GRID_TOLERANCE = 0.02
"""A grid scale up to 2% coarser than asked still counts as reaching the
smallest face (so 80 px starts at the grid's 79.6-px level)."""


def first_scale(
    min_face_size: float, scale_factor: float, *, max_scale: float = math.inf
) -> float:
    """The pyramid's finest scale: the coarsest grid scale (see
    :data:`GRID_FACE`) that still maps a face of ``min_face_size`` pixels to
    P-Net's 12-px window, and at most ``max_scale``."""
    base = PNET_CELL / GRID_FACE
    target = PNET_CELL / float(min_face_size) * (1.0 - GRID_TOLERANCE)
    k = math.floor(math.log(target / base) / math.log(scale_factor) + 1e-9)
    scale = base * scale_factor**k
    while scale > max_scale * (1.0 + 1e-9):
        scale *= scale_factor
    return float(scale)


def pyramid_scales(
    height: int, width: int, first: float, scale_factor: float
) -> npt.NDArray[np.float64]:
    """Scales from ``first`` (see :func:`first_scale`) down to where P-Net's
    12-px window covers the whole image (a face filling it); empty when the
    image is smaller than the window at ``first``."""
    smallest_side = float(min(height, width))
    scales: list[float] = []
    scale = first
    while smallest_side * scale >= PNET_CELL:
        scales.append(scale)
        scale *= scale_factor
    return np.asarray(scales, dtype=np.float64)


def level_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """The size of a pyramid level (truncated, as ``mtcnn`` does)."""
    return max(1, int(height * scale)), max(1, int(width * scale))


@dataclass(frozen=True)
class Tile:
    """One pyramid level of one image, placed in the canvas at ``(y, x)``."""

    image: int
    scale: float
    height: int
    width: int
    y: int = 0
    x: int = 0


def _even(value: int) -> int:
    return value + (value % 2)


def pack(tiles: Sequence[Tile]) -> tuple[list[Tile], tuple[int, int]]:
    """Place ``tiles`` on shelves in a canvas about as wide as it is high.

    Every tile starts on even coordinates, so P-Net's stride-2 cells line up
    with each tile's own origin (its cells are those of the tile alone).
    Returns the placed tiles (same order) and the canvas ``(height, width)``."""
    if not tiles:
        return [], (0, 0)
    area = sum(_even(t.height) * _even(t.width) for t in tiles)
    widest = max(_even(t.width) for t in tiles)
    canvas_w = max(widest, _even(math.ceil(math.sqrt(area))))
    order = sorted(range(len(tiles)), key=lambda i: (-tiles[i].height, -tiles[i].width))
    placed: dict[int, Tile] = {}
    x = y = shelf = 0
    for i in order:
        t = tiles[i]
        if x > 0 and x + t.width > canvas_w:
            y, x, shelf = y + shelf, 0, 0
        placed[i] = Tile(t.image, t.scale, t.height, t.width, y, x)
        x += _even(t.width)
        shelf = max(shelf, _even(t.height))
    return [placed[i] for i in range(len(tiles))], (y + shelf, canvas_w)


def output_shape(height: int, width: int) -> tuple[int, int]:
    """P-Net's output grid for an input of ``height x width`` (three valid
    3x3 convolutions around a 2x2 'same' max-pool)."""
    return math.ceil((height - 2) / 2) - 4, math.ceil((width - 2) / 2) - 4


def cell_owners(tiles: Sequence[Tile], grid: tuple[int, int]) -> npt.NDArray[np.int32]:
    """For each cell of P-Net's output grid, the index of the tile whose
    level wholly contains the cell's window, or -1."""
    owners = np.full(grid, -1, dtype=np.int32)
    for index, t in enumerate(tiles):
        if t.height < PNET_CELL or t.width < PNET_CELL:
            continue
        y0, x0 = t.y // PNET_STRIDE, t.x // PNET_STRIDE
        y1 = (t.y + t.height - PNET_CELL) // PNET_STRIDE
        x1 = (t.x + t.width - PNET_CELL) // PNET_STRIDE
        owners[y0 : y1 + 1, x0 : x1 + 1] = index
    return owners


def proposals(
    probs: npt.NDArray[np.float32],
    regress: npt.NDArray[np.float32],
    tiles: Sequence[Tile],
    owners: npt.NDArray[np.int32],
    threshold: float,
) -> npt.NDArray[np.float64]:
    """P-Net's candidate boxes in each image's own pixels.

    ``probs``: ``(gh, gw)`` face probability per cell; ``regress``: ``(gh, gw,
    4)`` box offsets. Returns rows ``[image, x1, y1, x2, y2, score, level]``
    sorted by score, highest first; ``level`` is the tile index (for the NMS
    within one level). The window geometry is ``mtcnn``'s: from
    ``stride*i + 1`` to ``stride*i + 12`` in the level, offsets scaled by that
    width, then divided by the level's scale."""
    hit = (probs > threshold) & (owners >= 0)
    cy, cx = np.nonzero(hit)
    if len(cy) == 0:
        return np.empty((0, 7))
    owner = owners[cy, cx]
    tile_y = np.asarray([t.y for t in tiles], dtype=np.float64)[owner]
    tile_x = np.asarray([t.x for t in tiles], dtype=np.float64)[owner]
    scale = np.asarray([t.scale for t in tiles], dtype=np.float64)[owner]
    image = np.asarray([t.image for t in tiles], dtype=np.float64)[owner]
    top = PNET_STRIDE * cy - tile_y
    left = PNET_STRIDE * cx - tile_x
    size = float(PNET_CELL - 1)
    reg = regress[cy, cx].astype(np.float64)
    x1 = left + 1 + reg[:, 0] * size
    y1 = top + 1 + reg[:, 1] * size
    x2 = left + PNET_CELL + reg[:, 2] * size
    y2 = top + PNET_CELL + reg[:, 3] * size
    score = probs[cy, cx].astype(np.float64)
    rows = np.stack(
        [image, x1 / scale, y1 / scale, x2 / scale, y2 / scale, score, owner.astype(np.float64)],
        axis=1,
    )
    return rows[np.argsort(-score, kind="stable")]


__all__ = [
    "GRID_FACE",
    "PNET_CELL",
    "PNET_STRIDE",
    "Tile",
    "cell_owners",
    "first_scale",
    "level_shape",
    "output_shape",
    "pack",
    "proposals",
    "pyramid_scales",
]
