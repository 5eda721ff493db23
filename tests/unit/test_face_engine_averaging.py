"""FaceEngine's landmark and chip averaging, with fake parts (no model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from facegate.engine.face_engine import EngineConfig, FaceEngine, scale_box, zoom_landmarks
from facegate.engine.types import Box, Chips, Encodings, Image

pytestmark = pytest.mark.unit

MARKS = np.array([[60, 50], [45, 50], [90, 50], [105, 50], [75, 80]], dtype=np.float32)


class _Detector:
    def detect(self, images: Sequence[Image]) -> list[list[Box]]:
        return [[Box(20.0, 20.0, 120.0, 120.0, 0.99)] for _ in images]


class _Predictor:
    """Landmarks that move with the box: its corners scaled onto MARKS."""

    def __init__(self) -> None:
        self.boxes: list[Box] = []

    def predict(self, image: Image, box: Box) -> npt.NDArray[np.float32]:
        self.boxes.append(box)
        return (MARKS * (box.width / 100.0)).astype(np.float32)


def _extract(
    image: Image, landmarks: Sequence[npt.NDArray[np.float32]]
) -> tuple[Chips, npt.NDArray[np.float32]]:
    # chip value = the landmarks' spread, so each zoom gives a distinct chip
    chips = np.stack([np.full((4, 4, 3), int(np.ptp(m[:, 0])), dtype=np.uint8) for m in landmarks])
    return chips, np.full(len(landmarks), 100.0, dtype=np.float32)


class _Embedder:
    model_id = "fake"
    dimension = 2

    def embed_chips(self, chips: Chips) -> Encodings:
        value = chips[:, 0, 0, 0].astype(np.float32)
        return np.stack([value, np.zeros_like(value)], axis=1)


def _engine(config: EngineConfig) -> tuple[FaceEngine, _Predictor]:
    predictor = _Predictor()
    engine = FaceEngine(_Detector(), predictor, _extract, _Embedder(), config)
    return engine, predictor


IMAGE = np.zeros((140, 140, 3), dtype=np.uint8)


def test_scale_box_keeps_the_centre() -> None:
    box = scale_box(Box(10.0, 20.0, 110.0, 80.0, 0.5), 1.1)
    assert box.center == pytest.approx((60.0, 50.0))
    assert (box.width, box.height, box.score) == pytest.approx((110.0, 66.0, 0.5))


def test_zoom_landmarks_shrinks_about_the_centroid() -> None:
    zoomed = zoom_landmarks(MARKS, 2.0)
    assert zoomed.dtype == np.float32
    np.testing.assert_allclose(zoomed.mean(axis=0), MARKS.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(np.ptp(zoomed, axis=0), np.ptp(MARKS, axis=0) / 2.0, atol=1e-4)


def test_landmarks_are_averaged_over_scaled_boxes() -> None:
    engine, predictor = _engine(
        EngineConfig(mirror_average=False, landmark_box_scales=(0.9, 1.0, 1.1), chip_zooms=(1.0,))
    )
    (faces,) = engine.encode_images([IMAGE])
    assert [b.width for b in predictor.boxes] == pytest.approx([90.0, 100.0, 110.0])
    np.testing.assert_allclose(faces[0].landmarks, MARKS, atol=1e-4)


def test_encodings_are_averaged_over_chip_zooms() -> None:
    engine, _ = _engine(
        EngineConfig(mirror_average=False, landmark_box_scales=(1.0,), chip_zooms=(1.0, 2.0))
    )
    (faces,) = engine.encode_images([IMAGE])
    spread = float(np.ptp(MARKS[:, 0]))  # 60; zoom 2 halves it
    assert faces[0].encoding[0] == pytest.approx((spread + spread / 2) / 2)
    assert engine.model_id == "fake+zoom1_2"


def test_plain_settings_keep_the_plain_model_id() -> None:
    engine, _ = _engine(EngineConfig(landmark_box_scales=(1.0,), chip_zooms=(1.0,)))
    assert engine.model_id == "fake+mirror"
    assert FaceEngine(_Detector(), _Predictor(), _extract, _Embedder()).model_id == (
        "fake+mirror+lm0.9_1_1.1+zoom1_1.06"
    )


@pytest.mark.parametrize(
    "kwargs", [{"chip_zooms": ()}, {"chip_zooms": (3.0,)}, {"landmark_box_scales": (0.0,)}]
)
def test_config_rejects_bad_factors(kwargs: dict[str, tuple[float, ...]]) -> None:
    with pytest.raises(ValueError):
        EngineConfig(**kwargs)  # type: ignore[arg-type]
