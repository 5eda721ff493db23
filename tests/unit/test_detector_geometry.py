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
