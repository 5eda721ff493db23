"""Face detection with MTCNN (the ``mtcnn`` PyPI package ships its weights),
run over a whole batch at once and sized for doors.

What is ours rather than the package's:

* Sizing. :class:`DetectorConfig` says the smallest face worth finding
  (``min_face_size``, pixels of the uploaded image) and the longest side
  searched (``max_side``): an image is searched on a copy at most that long,
  and its pyramid starts at the scale where the smallest face fills P-Net's
  12-px window, so no level is spent on faces no door camera sees.
* Batching. Every pyramid level of every image of the batch goes through
  P-Net in one call (packed into one canvas, :mod:`facegate.engine.pyramid`),
  then every surviving candidate of every image through R-Net in one call,
  and every survivor of that through O-Net in one call. The networks are the
  package's, with its weights, each traced once as a ``tf.function``; the box
  arithmetic between the stages is the package's own functions.
* The box handed to dlib's 5-point landmark model. That model was trained on
  boxes from dlib's own detector, which are squarer and sit lower on the face
  than MTCNN's. :func:`dlib_style_box` maps MTCNN's eyes and mouth points to
  such a box (constants fitted on LFW View 1 train).

TensorFlow and ``mtcnn`` are imported only when a detector is built.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facegate.engine.pyramid import (
    PNET_CELL,
    Tile,
    cell_owners,
    first_scale,
    level_shape,
    output_shape,
    pack,
    proposals,
    pyramid_scales,
)
from facegate.engine.types import Box, Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings, sized for door cameras (see the README for how the
    defaults were chosen: speed and LFW View 1 accuracy)."""

    min_face_size: int = 56
    """Smallest face searched for, in pixels of the uploaded image (the side
    of MTCNN's box). The pyramid's finest level maps this size to P-Net's
    12-px window (on a fixed grid of scales: see
    :data:`facegate.engine.pyramid.GRID_FACE`); smaller faces are not looked
    for. 56 (the grid's level at 56.4 px, one step above 40) keeps LFW View 1
    at 99.30% with half of the 40-px pyramid's pixels left out; door
    faces are 80 px and more (``bench/detector_sizes.py``, README)."""
    max_side: int = 640
    """Longest side searched: larger images are searched on a copy scaled
    down to it (boxes and points are mapped back; landmarks and chips still
    come from the full image). It caps the finest level too: on a copy scaled
    by ``f`` the smallest face found is ``max(min_face_size, 12 / f)``
    pixels. 0: never scaled down."""
    scale_factor: float = 0.709
    threshold_pnet: float = 0.6
    threshold_rnet: float = 0.7
    threshold_onet: float = 0.8
    max_batch: int = 16
    """Images per network pass (bounds the canvas and the candidate batches)."""

    def __post_init__(self) -> None:
        if self.min_face_size < PNET_CELL:
            raise ValueError(f"min_face_size must be >= {PNET_CELL}")
        if not 0.1 < self.scale_factor < 0.95:
            raise ValueError("scale_factor must be in (0.1, 0.95)")
        for t in (self.threshold_pnet, self.threshold_rnet, self.threshold_onet):
            if not 0.0 <= t < 1.0:
                raise ValueError("thresholds must be in [0, 1)")
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if self.max_side != 0 and self.max_side < 4 * PNET_CELL:
            raise ValueError(f"max_side must be 0 or at least {4 * PNET_CELL}")


@dataclass(frozen=True)
class Detection:
    """One MTCNN detection: its box and five points ``(5, 2)`` float32 in
    MTCNN's order: eye on the image's left, eye on the image's right, nose,
    mouth corner on the left, mouth corner on the right."""

    box: Box
    points: npt.NDArray[np.float32]


def downscale(image: Image, max_side: int) -> tuple[Image, float]:
    """``image`` with its longer side at most ``max_side`` (area-averaged),
    and the factor applied (1.0: unchanged, the same array)."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return image, 1.0
    from PIL import Image as PILImage

    factor = max_side / float(longest)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.asarray(PILImage.fromarray(image).resize(size, PILImage.Resampling.BOX))
    return small, factor


def scale_detection(det: Detection, factor: float) -> Detection:
    """A detection made on an image scaled by ``factor``, in the original's pixels."""
    if factor == 1.0:
        return det
    inv = 1.0 / factor
    b = det.box
    return Detection(
        Box(b.left * inv, b.top * inv, b.right * inv, b.bottom * inv, b.score),
        (det.points * inv).astype(np.float32),
    )


def dlib_style_box(points: npt.NDArray[np.float32], score: float = 1.0) -> Box:
    """A square box placed where dlib's frontal detector would put it, from
    MTCNN's eye and mouth points (rotation-tolerant: uses distances only)."""
    eyes = (points[0] + points[1]) / 2.0
    mouth = (points[3] + points[4]) / 2.0
    eye_mouth = float(np.hypot(*(mouth - eyes)))
    eye_eye = float(np.hypot(*(points[1] - points[0])))
    scale = max(eye_mouth * DLIB_BOX_K_EM + eye_eye * DLIB_BOX_K_EE, 1.0)
    axis = mouth - eyes
    across = np.array([-axis[1], axis[0]], dtype=np.float64) / max(eye_mouth, 1e-6)
    center = eyes + axis * DLIB_BOX_CENTER_T + across * (DLIB_BOX_ACROSS * scale)
    half = scale / 2.0
    return Box(
        float(center[0] - half),
        float(center[1] - half),
        float(center[0] + half),
        float(center[1] + half),
        score,
    )


# Least-squares fit on 597 LFW View 1 images where both dlib's HOG detector
# and MTCNN found the central face (median side error 5.7 %): the side of
# dlib's box from the eye-mouth and eye-eye distances, and its centre along
# (and slightly across) the eyes-to-mouth axis.
DLIB_BOX_K_EM = 1.405
DLIB_BOX_K_EE = 0.984
DLIB_BOX_CENTER_T = 0.445
DLIB_BOX_ACROSS = 0.034


@dataclass
class _Searched:
    """The copies one chunk of images is searched on, grouped by shape."""

    images: list[Image]
    factors: list[float]
    groups: dict[tuple[int, ...], list[int]]
    tensors: dict[tuple[int, ...], Any]
    """shape -> normalised float32 stack of that group's images"""
    slot: list[tuple[tuple[int, ...], int]]
    """image -> (its group's shape, its index in that stack)"""


class MtcnnDetector:
    """Batched MTCNN over images of any size (see the module docstring)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._nets: tuple[Any, Any, Any] | None = None

    def load(self) -> MtcnnDetector:
        """Build the three networks (imports TensorFlow). Idempotent."""
        if self._nets is None:
            self._nets = _load_networks()
        return self

    def detect_points(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections per image, in input order, most confident first."""
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(
                    f"image {i}: expected (H, W, 3) uint8, got {img.shape} {img.dtype}"
                )
        self.load()
        results: list[list[Detection]] = []
        step = self.config.max_batch
        for start in range(0, len(images), step):
            results += self._detect_chunk(images[start : start + step])
        return results

    def detect(self, images: Sequence[Image]) -> list[list[Box]]:
        """The :class:`~facegate.engine.types.FaceDetector` interface: dlib-style boxes."""
        return [
            [dlib_style_box(d.points, d.box.score) for d in dets]
            for dets in self.detect_points(images)
        ]

    # --- one chunk of at most max_batch images -------------------------------------

    def _detect_chunk(self, images: Sequence[Image]) -> list[list[Detection]]:
        searched = self._searched(images)
        rows = self._pnet(searched)
        if len(rows):
            rows = self._refine(searched, rows, self._nets[1], 24)  # type: ignore[index]
        if len(rows):
            rows = self._refine(searched, rows, self._nets[2], 48)  # type: ignore[index]
        out: list[list[Detection]] = [[] for _ in images]
        if len(rows) == 0:
            return out
        from mtcnn.utils.bboxes import limit_bboxes

        shapes = np.asarray([img.shape for img in searched.images])
        rows = limit_bboxes(rows, images_shapes=shapes, limit_landmarks=False)
        for i in range(len(images)):
            mine = rows[rows[:, 0] == i]
            out[i] = [scale_detection(d, searched.factors[i]) for d in _to_detections(mine)]
        return out

    def _searched(self, images: Sequence[Image]) -> _Searched:
        import tensorflow as tf

        scaled = [downscale(img, self.config.max_side) for img in images]
        copies = [small for small, _ in scaled]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        slot: list[tuple[tuple[int, ...], int]] = []
        for i, img in enumerate(copies):
            slot.append((img.shape, len(groups[img.shape])))
            groups[img.shape].append(i)
        tensors = {
            shape: tf.constant(
                (np.stack([copies[i] for i in members]).astype(np.float32) - 127.5) / 128.0
            )
            for shape, members in groups.items()
        }
        return _Searched(copies, [f for _, f in scaled], dict(groups), tensors, slot)

    def _pnet(self, s: _Searched) -> npt.NDArray[np.float64]:
        """Every level of every image through P-Net at once; candidate rows
        ``[image, x1, y1, x2, y2, score]`` after the package's two NMS rounds."""
        import tensorflow as tf
        from mtcnn.utils.bboxes import resize_to_square, smart_nms_from_bboxes

        cfg = self.config
        tiles: list[Tile] = []
        levels: list[Any] = []
        for shape, members in s.groups.items():
            height, width = shape[0], shape[1]
            factor = s.factors[members[0]]
            # the grid is the original image's; on a copy scaled by `factor`
            # its scales are divided by it, and never above the copy's own 1.0
            first = first_scale(cfg.min_face_size, cfg.scale_factor, max_scale=factor) / factor
            scales = pyramid_scales(height, width, first, cfg.scale_factor)
            for scale in scales:
                size = level_shape(height, width, float(scale))
                stack = tf.image.resize(s.tensors[shape], size, method="area").numpy()
                for k, i in enumerate(members):
                    tiles.append(Tile(i, float(scale), size[0], size[1]))
                    levels.append(stack[k])
        if not tiles:
            return np.empty((0, 6))
        placed, (canvas_h, canvas_w) = pack(tiles)
        canvas = np.zeros((1, canvas_h, canvas_w, 3), dtype=np.float32)
        for t, level in zip(placed, levels, strict=True):
            canvas[0, t.y : t.y + t.height, t.x : t.x + t.width] = level
        regress, probs = self._nets[0](tf.constant(canvas))  # type: ignore[index]
        grid = output_shape(canvas_h, canvas_w)
        owners = cell_owners(placed, grid)
        rows = proposals(probs.numpy()[0, :, :, 1], regress.numpy()[0], placed, owners,
                         cfg.threshold_pnet)
        if len(rows) == 0:
            return np.empty((0, 6))
        # NMS within each level (key: the tile), then across the levels of an image
        per_level = rows[:, [6, 1, 2, 3, 4, 5, 0]]
        per_level = smart_nms_from_bboxes(per_level, threshold=0.5, method="union",
                                          initial_sort=False)
        merged = per_level[:, [6, 1, 2, 3, 4, 5]]
        merged = smart_nms_from_bboxes(merged, threshold=0.7, method="union", initial_sort=True)
        return resize_to_square(merged)  # type: ignore[no-any-return]

    def _refine(
        self, s: _Searched, rows: npt.NDArray[np.float64], net: Any, size: int
    ) -> npt.NDArray[np.float64]:
        """R-Net (``size`` 24) or O-Net (48) over every candidate of the chunk."""
        import tensorflow as tf
        from mtcnn.utils.bboxes import (
            adjust_bboxes,
            pick_matches,
            replace_confidence,
            resize_to_square,
            smart_nms_from_bboxes,
        )

        order: list[npt.NDArray[np.int64]] = []
        patches = []
        for shape, members in s.groups.items():
            mask = np.isin(rows[:, 0].astype(np.int64), members)
            picked = np.nonzero(mask)[0]
            if len(picked) == 0:
                continue
            sel = rows[picked]
            index = np.asarray([s.slot[int(i)][1] for i in sel[:, 0]], dtype=np.int32)
            coords = sel[:, [2, 1, 4, 3]] / np.asarray([shape[0], shape[1], shape[0], shape[1]])
            patches.append(
                tf.image.crop_and_resize(s.tensors[shape], coords.astype(np.float32), index,
                                         (size, size))
            )
            order.append(picked)
        taken = np.concatenate(order)
        rows = rows[taken]
        outputs = net(tf.concat(patches, axis=0))
        cfg = self.config
        if size == 24:
            offsets, scores = (o.numpy() for o in outputs)
            rows = replace_confidence(rows, scores)
            rows = adjust_bboxes(rows, offsets)
            rows = pick_matches(rows, score_threshold=cfg.threshold_rnet)
            if len(rows) == 0:
                return rows
            rows = smart_nms_from_bboxes(rows, threshold=0.7, method="union", initial_sort=True)
            return resize_to_square(rows)  # type: ignore[no-any-return]
        offsets, marks, scores = (o.numpy() for o in outputs)
        width = rows[:, 3:4] - rows[:, 1:2] + 1
        height = rows[:, 4:5] - rows[:, 2:3] + 1
        marks = marks.astype(np.float64)
        marks[:, 0:5] = width * marks[:, 0:5] + rows[:, 1:2] - 1
        marks[:, 5:10] = height * marks[:, 5:10] + rows[:, 2:3] - 1
        rows = replace_confidence(rows, scores)
        rows = adjust_bboxes(rows, offsets)
        rows = np.concatenate([rows, marks], axis=-1)
        rows = pick_matches(rows, scores_column=5, score_threshold=cfg.threshold_onet)
        if len(rows) == 0:
            return rows
        return smart_nms_from_bboxes(  # type: ignore[no-any-return]
            rows, threshold=0.7, method="min", initial_sort=True
        )


def _to_detections(rows: npt.NDArray[np.float64]) -> list[Detection]:
    # Row layout of mtcnn 1.0.0's numpy output: image index, x1, y1, x2, y2,
    # confidence, the five x coordinates, then the five y coordinates.
    order: list[int] = [int(k) for k in np.argsort(-rows[:, 5])] if len(rows) else []
    out: list[Detection] = []
    for k in order:
        r = rows[k]
        points = np.stack([r[6:11], r[11:16]], axis=1).astype(np.float32)
        out.append(
            Detection(Box(float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])), points)
        )
    return out


def _load_networks() -> tuple[Any, Any, Any]:
    """The package's three networks with its weights, each traced once into
    a concrete function (dynamic batch and, for P-Net, canvas size)."""
    import tensorflow as tf
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    def traced(model: Any, shape: tuple[int | None, ...], probe: tuple[int, ...]) -> Any:
        # traced now (not on the first request), called as a concrete function
        concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(
            tf.TensorSpec(shape, tf.float32)
        )
        concrete(tf.zeros(probe, tf.float32))
        return concrete

    return (
        traced(StagePNet().model, (1, None, None, 3), (1, 24, 24, 3)),
        traced(StageRNet().model, (None, 24, 24, 3), (1, 24, 24, 3)),
        traced(StageONet().model, (None, 48, 48, 3), (1, 48, 48, 3)),
    )
