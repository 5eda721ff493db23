"""Pure geometry of the detector wrapper: the pyramid and the dlib-style box."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.engine.detector import PNET_CELL, DetectorConfig, dlib_style_box, pyramid_scales

pytestmark = pytest.mark.unit


def test_pyramid_never_goes_below_the_pnet_cell() -> None:
    for h, w, min_face in [(250, 250, 40), (480, 640, 20), (1200, 626, 80), (100, 3000, 40)]:
        scales = pyramid_scales(h, w, min_face, 0.709)
        assert len(scales) > 0
        assert scales[0] == pytest.approx(PNET_CELL / min_face)
        assert min(h, w) * scales[-1] >= PNET_CELL
        # one more step would fall below the cell: the pyramid is complete
        assert min(h, w) * scales[-1] * 0.709 < PNET_CELL
        np.testing.assert_allclose(scales[1:] / scales[:-1], 0.709)


def test_pyramid_is_empty_when_the_image_is_smaller_than_the_minimum_face() -> None:
    assert len(pyramid_scales(30, 30, 40, 0.709)) == 0
    assert len(pyramid_scales(40, 500, 40, 0.709)) == 1


def test_dlib_box_is_square_and_follows_the_face() -> None:
    # eyes at (100,100),(140,100); nose (120,120); mouth corners (105,145),(135,145)
    pts = np.array([[100, 100], [140, 100], [120, 120], [105, 145], [135, 145]], np.float32)
    box = dlib_style_box(pts, 0.9)
    assert box.width == pytest.approx(box.height)
    assert box.score == 0.9
    cx, cy = box.center
    assert 100 < cy < 145  # between eyes and mouth
    assert abs(cx - 120) < 0.1 * box.width
    assert 60 < box.width < 130
    # translation and scale equivariance
    moved = dlib_style_box(pts * 2 + 50)
    assert moved.width == pytest.approx(box.width * 2, rel=1e-5)
    assert moved.center[0] == pytest.approx(cx * 2 + 50, rel=1e-5)


def test_dlib_box_is_rotation_tolerant() -> None:
    pts = np.array([[100, 100], [140, 100], [120, 120], [105, 145], [135, 145]], np.float32)
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    centre = np.array([120, 120], np.float32)
    turned = (pts - centre) @ rot.T + centre
    a, b = dlib_style_box(pts), dlib_style_box(turned)
    assert b.width == pytest.approx(a.width, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [{"min_face_size": 5}, {"scale_factor": 0.99}, {"threshold_onet": 1.5}, {"max_batch": 0}],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DetectorConfig(**kwargs)  # type: ignore[arg-type]


def test_downscale_keeps_small_images_and_shrinks_large_ones() -> None:
    from facegate.engine.detector import downscale

    small = np.zeros((480, 640, 3), np.uint8)
    same, factor = downscale(small, 1024)
    assert same is small and factor == 1.0
    big = np.zeros((2333, 1434, 3), np.uint8)
    out, factor = downscale(big, 1024)
    assert out.shape == (1024, 629, 3) and out.dtype == np.uint8
    assert factor == pytest.approx(1024 / 2333)
    assert downscale(big, 0)[0] is big


def test_detections_on_a_scaled_copy_map_back_to_the_original() -> None:
    from facegate.engine.detector import Detection, scale_detection
    from facegate.engine.types import Box

    points = np.array([[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]], np.float32)
    det = Detection(Box(5, 10, 35, 50, 0.9), points)
    back = scale_detection(det, 0.5)
    assert (back.box.left, back.box.top, back.box.right, back.box.bottom) == (10, 20, 70, 100)
    assert back.box.score == 0.9
    np.testing.assert_allclose(back.points, points * 2)
    assert scale_detection(det, 1.0) is det


def test_max_side_must_leave_room_for_the_minimum_face() -> None:
    from facegate.engine.detector import DetectorConfig

    with pytest.raises(ValueError):
        DetectorConfig(min_face_size=40, max_side=100)
    DetectorConfig(max_side=0)
