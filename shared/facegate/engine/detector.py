"""Face detection with MTCNN (the ``mtcnn`` PyPI package ships its weights).

Two things are ours rather than the package's:

* The image pyramid. ``mtcnn`` 1.0.0 counts its scales from the image size
  alone, so any ``min_face_size`` above its default of 20 px produces scales
  smaller than PNet's 12 px receptive field and the whole call fails. Door
  cameras see large faces, and skipping the small scales is the main speed
  lever, so we build the pyramid correctly here and hand the package's stages
  our scales.
* The box handed to dlib's 5-point landmark model. That model was trained on
  boxes from dlib's own detector, which are squarer and sit lower on the face
  than MTCNN's. :func:`dlib_style_box` maps MTCNN's eyes and mouth points to
  such a box (constants fitted on LFW View 1 train, see ``docs``/README).

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

from facegate.engine.types import Box, Image

log = logging.getLogger(__name__)

PNET_CELL = 12
"""PNet's receptive field in pixels: the smallest face at scale 1."""


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings. Faces at a door are large: 40 px is a safe floor for LFW
    photos (250x250) and 640x480 door snapshots alike."""

    min_face_size: int = 40
    scale_factor: float = 0.709
    threshold_pnet: float = 0.6
    threshold_rnet: float = 0.7
    threshold_onet: float = 0.8
    max_batch: int = 16
    max_side: int = 1024
    """Images whose longer side exceeds this are searched on a copy scaled down
    to it (boxes and points are mapped back; landmarks and chips still come
    from the full image). MTCNN's pyramid cost grows with the pixel count, so
    a 2333x1434 snapshot takes about 4x longer than at 1024 px for the same
    faces. ``min_face_size`` then applies at the reduced size. 0: never."""

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
        if self.max_side != 0 and self.max_side < 4 * self.min_face_size:
            raise ValueError("max_side must be 0 or at least 4 x min_face_size")


@dataclass(frozen=True)
class Detection:
    """One MTCNN detection: its box and five points ``(5, 2)`` float32 in
    MTCNN's order: eye on the image's left, eye on the image's right, nose,
    mouth corner on the left, mouth corner on the right."""

    box: Box
    points: npt.NDArray[np.float32]


def pyramid_scales(
    height: int, width: int, min_face_size: int, scale_factor: float
) -> npt.NDArray[np.float64]:
    """Scales at which PNet's 12 px cell covers faces from ``min_face_size`` up
    to the whole image; empty when the image is smaller than the minimum face."""
    first = PNET_CELL / float(min_face_size)
    smallest_side = float(min(height, width))
    scales: list[float] = []
    scale = first
    while smallest_side * scale >= PNET_CELL:
        scales.append(scale)
        scale *= scale_factor
    return np.asarray(scales, dtype=np.float64)


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


class MtcnnDetector:
    """Batched MTCNN over images of any size (grouped by shape internally)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._stages: list[Any] | None = None

    def load(self) -> MtcnnDetector:
        """Build the three networks (imports TensorFlow). Idempotent."""
        if self._stages is None:
            from mtcnn.stages import StageONet, StageRNet

            self._stages = [_make_pnet_stage(self.config), StageRNet(), StageONet()]
        return self

    def detect_points(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections per image, in input order, most confident first."""
        self.load()
        results: list[list[Detection]] = [[] for _ in images]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(
                    f"image {i}: expected (H, W, 3) uint8, got {img.shape} {img.dtype}"
                )
        scaled = [downscale(img, self.config.max_side) for img in images]
        images = [small for small, _ in scaled]
        for i, img in enumerate(images):
            groups[img.shape].append(i)
        step = self.config.max_batch
        for shape, indices in groups.items():
            if not len(pyramid_scales(shape[0], shape[1], self.config.min_face_size, 0.7)):
                continue  # smaller than the minimum face: nothing to find
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                rows = self._run([images[i] for i in chunk])
                for local, global_index in enumerate(chunk):
                    mine = rows[rows[:, 0] == local] if len(rows) else rows
                    factor = scaled[global_index][1]
                    results[global_index] = [
                        scale_detection(d, factor) for d in _to_detections(mine)
                    ]
        return results

    def detect(self, images: Sequence[Image]) -> list[list[Box]]:
        """The :class:`~facegate.engine.types.FaceDetector` interface: dlib-style boxes."""
        return [
            [dlib_style_box(d.points, d.box.score) for d in dets]
            for dets in self.detect_points(images)
        ]

    def _run(self, batch: list[Image]) -> npt.NDArray[np.float64]:
        import tensorflow as tf
        from mtcnn.utils.bboxes import fix_bboxes_offsets, limit_bboxes
        from mtcnn.utils.images import standarize_batch

        assert self._stages is not None
        cfg = self.config
        raw = [tf.convert_to_tensor(img, dtype=tf.float32) for img in batch]
        normalized, oshapes, pad = standarize_batch(raw, justification="center", normalize=True)
        boxes: Any = None
        try:
            for stage in self._stages:
                boxes = stage(
                    bboxes_batch=boxes,
                    images_normalized=normalized,
                    images_oshapes=oshapes,
                    threshold_rnet=cfg.threshold_rnet,
                    threshold_onet=cfg.threshold_onet,
                )
        except tf.errors.InvalidArgumentError:
            # The package signals "no candidate survived" by an empty gather.
            return np.empty((0, 16))
        if boxes is None or len(boxes) == 0:
            return np.empty((0, 16))
        boxes = fix_bboxes_offsets(boxes, pad)
        boxes = limit_bboxes(boxes, images_shapes=oshapes, limit_landmarks=False)
        return np.asarray(boxes, dtype=np.float64)


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


def _make_pnet_stage(config: DetectorConfig) -> Any:
    """The package's PNet stage with our pyramid (see the module docstring)."""
    from mtcnn.stages import StagePNet
    from mtcnn.utils.bboxes import (
        generate_bounding_box,
        resize_to_square,
        smart_nms_from_bboxes,
        upscale_bboxes,
    )
    from mtcnn.utils.images import scale_images

    class _PyramidPNet(StagePNet):  # type: ignore[misc]
        def __call__(self, images_normalized: Any, images_oshapes: Any, **kwargs: Any) -> Any:
            height, width = (int(v) for v in images_normalized.shape[1:3])
            scales = pyramid_scales(height, width, config.min_face_size, config.scale_factor)
            batch_size = int(images_normalized.shape[0])
            per_scale = []
            for scale in scales:
                scaled = scale_images(images_normalized, float(scale))
                probs, regress = self._model(scaled)
                found = generate_bounding_box(probs, regress, config.threshold_pnet)
                found = upscale_bboxes(found, np.asarray([scale] * batch_size))
                per_scale.append(
                    smart_nms_from_bboxes(found, threshold=0.5, method="union", initial_sort=False)
                )
            merged = np.concatenate(per_scale, axis=0) if per_scale else np.empty((0, 6))
            merged = smart_nms_from_bboxes(merged, threshold=0.7, method="union", initial_sort=True)
            return resize_to_square(merged)

    return _PyramidPNet()
