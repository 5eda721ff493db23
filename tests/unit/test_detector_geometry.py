"""Pure geometry of the detector: the pyramid, its packing into one canvas,
P-Net's cells mapped back to each image, and the dlib-style box."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.engine.detector import PNET_CELL, DetectorConfig, dlib_style_box, pyramid_scales

pytestmark = pytest.mark.unit


def scales_for(h: int, w: int, min_face: float) -> np.ndarray:
    from facegate.engine.pyramid import first_scale

    return pyramid_scales(h, w, first_scale(min_face, 0.709), 0.709)


def test_pyramid_never_goes_below_the_pnet_cell() -> None:
    for h, w, min_face in [(250, 250, 40), (480, 640, 20), (1200, 626, 80), (100, 3000, 40)]:
        scales = scales_for(h, w, min_face)
        assert len(scales) > 0
        # the finest level reaches the smallest face (within the grid's 2%)
        assert PNET_CELL / scales[0] <= min_face / 0.98
        assert PNET_CELL / scales[0] >= 0.98 * min_face * 0.709
        assert min(h, w) * scales[-1] >= PNET_CELL
        # one more step would fall below the cell: the pyramid is complete
        assert min(h, w) * scales[-1] * 0.709 < PNET_CELL
        np.testing.assert_allclose(scales[1:] / scales[:-1], 0.709)


def test_pyramid_is_empty_when_the_image_is_smaller_than_the_minimum_face() -> None:
    assert len(scales_for(30, 30, 40)) == 0
    assert len(scales_for(40, 500, 40)) == 1


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


def test_max_side_must_leave_room_for_a_face() -> None:
    from facegate.engine.detector import DetectorConfig

    with pytest.raises(ValueError):
        DetectorConfig(min_face_size=40, max_side=40)
    DetectorConfig(max_side=0)
    DetectorConfig(min_face_size=80, max_side=48)


def test_levels_lie_on_one_grid_so_a_larger_smallest_face_only_drops_levels() -> None:
    from facegate.engine.pyramid import first_scale

    full = scales_for(480, 640, 40)
    assert full[0] == pytest.approx(12 / 40)
    door = scales_for(480, 640, 80)
    assert 12 / door[0] == pytest.approx(79.6, abs=0.1)  # 2% short of 80: counts
    np.testing.assert_allclose(door, full[2:])  # the same levels, less the two finest
    assert len(door) < len(full)
    assert 12 / scales_for(480, 640, 100)[0] < 100  # 112 px would miss 100-px faces
    # a cap (the searched copy's own resolution) steps down the same grid
    capped = first_scale(20, 0.709, max_scale=0.25)
    assert capped <= 0.25 and capped == pytest.approx(full[np.argmax(full <= 0.25)])


def test_packed_levels_do_not_overlap_and_start_on_even_pixels() -> None:
    from facegate.engine.pyramid import Tile, level_shape, pack

    tiles = []
    for image, (h, w) in enumerate([(393, 640), (282, 640), (512, 512), (250, 250)]):
        for scale in scales_for(h, w, 40):
            th, tw = level_shape(h, w, float(scale))
            tiles.append(Tile(image, float(scale), th, tw))
    placed, (height, width) = pack(tiles)
    assert [(t.image, t.scale, t.height, t.width) for t in placed] == [
        (t.image, t.scale, t.height, t.width) for t in tiles
    ]
    covered = np.zeros((height, width), np.int32)
    for t in placed:
        assert t.y % 2 == 0 and t.x % 2 == 0
        assert t.y + t.height <= height and t.x + t.width <= width
        covered[t.y : t.y + t.height, t.x : t.x + t.width] += 1
    assert covered.max() == 1
    # about square, and not much bigger than the levels themselves
    assert 0.3 < height / width < 3.0
    assert covered.sum() / covered.size > 0.6
    assert pack([]) == ([], (0, 0))


def test_a_cell_belongs_to_a_level_only_when_its_window_is_inside_it() -> None:
    from facegate.engine.pyramid import Tile, cell_owners, output_shape

    tiles = [Tile(0, 1.0, 30, 40, 0, 0), Tile(1, 0.5, 24, 24, 0, 40), Tile(2, 0.5, 10, 10, 30, 0)]
    grid = output_shape(40, 64)
    owners = cell_owners(tiles, grid)
    assert owners.shape == grid
    for cy in range(grid[0]):
        for cx in range(grid[1]):
            y, x = 2 * cy, 2 * cx  # the cell's 12-px window in the canvas
            inside = [k for k, t in enumerate(tiles)
                      if t.y <= y and y + 12 <= t.y + t.height and t.x <= x
                      and x + 12 <= t.x + t.width]
            assert owners[cy, cx] == (inside[0] if inside else -1), (cy, cx)
    assert (owners == 2).sum() == 0  # smaller than a window: never proposes


def test_proposals_map_cells_back_to_each_image() -> None:
    from facegate.engine.pyramid import Tile, cell_owners, output_shape, proposals

    tiles = [Tile(0, 0.5, 40, 40, 0, 0), Tile(3, 0.25, 20, 20, 0, 40)]
    grid = output_shape(40, 60)
    owners = cell_owners(tiles, grid)
    probs = np.zeros(grid, np.float32)
    regress = np.zeros((*grid, 4), np.float32)
    probs[5, 3] = 0.9   # tile 0: window at (10, 6) in the level
    probs[2, 22] = 0.8  # tile 1: window at (4, 4) in its level (x 44 - 40)
    regress[2, 22] = [0.1, 0.0, 0.0, -0.1]
    probs[0, 0] = 0.3   # under the threshold
    rows = proposals(probs, regress, tiles, owners, 0.6)
    assert rows.shape == (2, 7)
    first, second = rows  # highest score first
    assert first[0] == 0 and first[5] == pytest.approx(0.9) and first[6] == 0
    np.testing.assert_allclose(first[1:5], np.array([7, 11, 18, 22]) / 0.5)
    assert second[0] == 3 and second[6] == 1
    np.testing.assert_allclose(second[1:5], np.array([5 + 1.1, 5, 16, 16 - 1.1]) / 0.25)
    none = proposals(np.zeros(grid, np.float32), regress, tiles, owners, 0.6)
    assert none.shape == (0, 7)
