"""Pure geometry of the landmark and chip ports: similarity fit, dlib's
rectangle conventions, pyramid_down<2>, bilinear sampling with zero fill, and
the regression-tree walk on a tiny hand-made model (no model files)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from facegate.core.errors import ModelFormatError
from facegate.engine.chip import (
    CHIP_SIZE,
    TEMPLATE_5,
    Rect,
    extract_chip,
    extract_chips,
    face_chip_details,
    pyramid_down2,
)
from facegate.engine.dlib_serialize import DlibReader
from facegate.engine.shape_predictor import ShapePredictor, dlib_rect, similarity_transform
from facegate.engine.types import Box

pytestmark = pytest.mark.unit

F64 = npt.NDArray[np.float64]


def similarity(angle: float, scale: float, shift: tuple[float, float]) -> tuple[F64, F64]:
    c, s = math.cos(angle), math.sin(angle)
    return scale * np.array([[c, -s], [s, c]]), np.array(shift)


def test_similarity_fit_recovers_a_known_transform(rng: np.random.Generator) -> None:
    src = rng.uniform(-50, 50, size=(7, 2))
    m, b = similarity(0.7, 2.5, (13.0, -4.0))
    dst = src @ m.T + b
    got_m, got_b = similarity_transform(src, dst)
    np.testing.assert_allclose(got_m, m, atol=1e-12)
    np.testing.assert_allclose(got_b, b, atol=1e-10)


def test_similarity_fit_is_least_squares_and_never_reflects(rng: np.random.Generator) -> None:
    src = rng.uniform(-1, 1, size=(5, 2))
    mirrored = src * np.array([-1.0, 1.0])
    m, _ = similarity_transform(src, mirrored)
    assert np.linalg.det(m) >= 0
    noisy = src @ similarity(-0.3, 1.7, (2.0, 3.0))[0].T + rng.normal(0, 0.01, size=(5, 2))
    m, b = similarity_transform(src, noisy)
    residual = float(((src @ m.T + b - noisy) ** 2).sum())
    for tweak in (1e-3, -1e-3):
        other = m @ similarity(tweak, 1.0 + tweak, (0.0, 0.0))[0]
        assert float(((src @ other.T + b - noisy) ** 2).sum()) > residual


def test_similarity_fit_of_coincident_points_is_the_identity() -> None:
    src = np.ones((5, 2))
    dst = np.arange(10, dtype=np.float64).reshape(5, 2)
    m, b = similarity_transform(src, dst)
    np.testing.assert_array_equal(m, np.eye(2))
    np.testing.assert_allclose(b, dst.mean(axis=0) - 1.0)


def test_chip_details_follow_the_template_transform() -> None:
    m, b = similarity(math.radians(20), 2.0, (40.0, 60.0))
    template_px = ((0.25 + TEMPLATE_5) / 1.5) * CHIP_SIZE
    landmarks = template_px @ m.T + b
    details = face_chip_details(landmarks)
    assert details.angle == pytest.approx(math.radians(20))
    assert details.source_size == pytest.approx(2.0 * CHIP_SIZE)
    assert details.rect.width == pytest.approx(300.0) and details.rect.height == pytest.approx(300)
    centre = m @ np.array([75.0, 75.0]) + b
    assert details.rect.center == pytest.approx(tuple(centre))
    assert (details.rows, details.cols) == (CHIP_SIZE, CHIP_SIZE)


def test_chip_details_reject_bad_landmarks() -> None:
    with pytest.raises(ValueError):
        face_chip_details(np.zeros((68, 2)))
    with pytest.raises(ValueError):
        face_chip_details(np.full((5, 2), np.nan))


def test_rect_conventions_are_dlibs() -> None:
    r = Rect(10.0, 20.0, 29.0, 59.0)
    assert (r.width, r.height, r.area) == (20.0, 40.0, 800.0)
    assert Rect(0, 0, -1, -1).is_empty and Rect(0, 0, -1, -1).area == 0
    assert Rect(-0.5, 0.5, 2.5, 2.49).rounded() == (0, 1, 3, 2)
    assert Rect(-1.5, -0.51, 0, 0).rounded() == (-1, -1, 0, 0)
    down = r.down()
    assert (down.left, down.top, down.right, down.bottom) == (3.75, 9.25, 13.25, 28.75)


def test_box_to_dlib_rectangle_rounds_half_up() -> None:
    assert dlib_rect(Box(10.5, 10.49, 99.5, -0.5)) == (11, 10, 100, 0)
    with pytest.raises(ValueError):
        dlib_rect(Box(math.nan, 0, 1, 1))


def reference_pyramid_down(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Slow loops over dlib's pyramid_down_2_1 (rgb)."""
    rows, cols = image.shape[:2]
    w = [1, 4, 6, 4, 1]
    out_rows, out_cols = (rows - 3) // 2, (cols - 3) // 2
    tmp = np.zeros((rows, out_cols, 3), dtype=np.int64)
    for r in range(rows):
        for c in range(out_cols):
            tmp[r, c] = sum(w[k] * image[r, 2 * c + k].astype(np.int64) for k in range(5))
    out = np.zeros((out_rows, out_cols, 3), dtype=np.uint8)
    for dr, r in enumerate(range(2, rows - 2, 2)):
        if dr >= out_rows:
            break
        for c in range(out_cols):
            total = sum(w[k] * tmp[r - 2 + k, c] for k in range(5))
            assert (total < 65536).all()  # dlib accumulates in uint16
            out[dr, c] = total // 256
    return out


@pytest.mark.parametrize("shape", [(23, 30), (24, 31), (9, 9), (40, 12)])
def test_pyramid_down_matches_a_loop_reference(
    shape: tuple[int, int], rng: np.random.Generator
) -> None:
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    got = pyramid_down2(image)
    assert got.shape == ((shape[0] - 3) // 2, (shape[1] - 3) // 2, 3)
    np.testing.assert_array_equal(got, reference_pyramid_down(image))


def test_pyramid_down_of_white_stays_white_and_tiny_images_vanish() -> None:
    white = np.full((20, 20, 3), 255, dtype=np.uint8)
    assert (pyramid_down2(white) == 255).all()
    assert pyramid_down2(np.zeros((8, 50, 3), dtype=np.uint8)).shape == (0, 0, 3)


def template_landmarks(scale: float, shift: tuple[float, float], angle: float = 0.0) -> F64:
    m, b = similarity(angle, scale, shift)
    return (((0.25 + TEMPLATE_5) / 1.5) * CHIP_SIZE) @ m.T + b


def test_upright_unscaled_chip_samples_half_a_pixel_off_the_grid() -> None:
    """dlib centres the source rectangle on the image of (75, 75), but chip
    pixels run 0..149 (centre 74.5): chip pixel (c, r) samples the source at
    (left + 0.5 + c, top + 0.5 + r) for a scale-1 upright face."""
    yy, xx = np.mgrid[0:200, 0:200]
    image = np.stack([xx, yy, 255 - xx], axis=-1).astype(np.uint8)
    details = face_chip_details(template_landmarks(1.0, (20.0, 30.0)))
    assert details.angle == pytest.approx(0.0, abs=1e-12)
    chip = extract_chip(image, details).astype(int)
    c = np.arange(CHIP_SIZE)
    # bilinear halfway between two pixels, then truncated
    assert np.abs(chip[:, :, 0] - (20 + c)[None, :]).max() <= 1
    assert np.abs(chip[:, :, 1] - (30 + c)[:, None]).max() <= 1
    assert np.abs(chip[:, :, 2] - (234 - c)[None, :]).max() <= 1
    # 234 - c (not 235 - c): the sample sits between x = 20 + c and 21 + c
    assert (chip[:, :, 2] == (234 - c)[None, :]).mean() > 0.9


def test_chip_is_zero_where_the_source_is_outside_the_image() -> None:
    image = np.full((200, 200, 3), 200, dtype=np.uint8)
    # face centred on the left edge: the chip's left half samples outside
    details = face_chip_details(template_landmarks(1.0, (-75.0, 20.0)))
    chip = extract_chip(image, details)
    assert (chip[:, :74] == 0).all()
    assert ((chip[:, 77:] == 200) | (chip[:, 77:] == 199)).all()


def test_large_rotated_face_uses_the_pyramid_and_stays_centred() -> None:
    yy, xx = np.mgrid[0:900, 0:900]
    spot = (((xx - 450) ** 2 + (yy - 450) ** 2) < 60**2).astype(np.uint8) * 250
    image = np.repeat(spot[..., None], 3, axis=-1)
    # the chip centre (75, 75) maps to the image centre (450, 450)
    m, _ = similarity(0.5, 4.0, (0.0, 0.0))
    shift = np.array([450.0, 450.0]) - m @ np.array([75.0, 75.0])
    details = face_chip_details(template_landmarks(4.0, (shift[0], shift[1]), 0.5))
    assert details.rect.down().down().area > CHIP_SIZE * CHIP_SIZE
    chip = extract_chip(image, details)
    ys, xs = np.nonzero(chip[..., 0] > 125)
    assert xs.mean() == pytest.approx(74.5, abs=1.5) and ys.mean() == pytest.approx(74.5, abs=1.5)
    # a disc of radius 60 px at scale 4 is about 15 chip pixels across
    assert len(xs) == pytest.approx(math.pi * 15**2, rel=0.15)


def test_extract_chips_shapes_and_validation() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    chips, sizes = extract_chips(image, [])
    assert chips.shape == (0, CHIP_SIZE, CHIP_SIZE, 3) and sizes.shape == (0,)
    chips, sizes = extract_chips(image, [template_landmarks(0.5, (10.0, 10.0)).astype(np.float32)])
    assert chips.shape == (1, CHIP_SIZE, CHIP_SIZE, 3) and chips.dtype == np.uint8
    assert sizes[0] == pytest.approx(75.0) and sizes.dtype == np.float32
    with pytest.raises(ValueError):
        extract_chips(np.zeros((100, 100), dtype=np.uint8), [])


# -- a tiny shape predictor, serialized by hand ------------------------------


def enc_int(value: int) -> bytes:
    magnitude = abs(value)
    raw = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(raw) | (0x80 if value < 0 else 0)]) + raw


def enc_float(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)
    return enc_int(int(mantissa * (1 << 24))) + enc_int(exponent - 24)


def enc_column(values: list[float]) -> bytes:
    return enc_int(-len(values)) + enc_int(-1) + b"".join(enc_float(v) for v in values)


def tiny_model(split_index: int = 1) -> bytes:
    """Two parts; one cascade with one depth-1 tree splitting on the pixel left
    of part 0 minus the pixel right of part 1; leaves move both parts by +-0.1."""
    out = enc_int(1) + enc_column([0.25, 0.5, 0.75, 0.5])
    out += enc_int(1) + enc_int(1)  # one cascade level, one tree
    out += enc_int(1) + enc_int(0) + enc_int(split_index) + enc_float(0.0)
    out += enc_int(2) + enc_column([0.1, 0.0, 0.1, 0.0]) + enc_column([-0.1, 0.0, -0.1, 0.0])
    out += enc_int(1) + enc_int(2) + enc_int(0) + enc_int(1)  # anchors
    out += enc_int(1) + enc_int(2) + enc_float(-0.2) + enc_float(0.0)
    out += enc_float(0.2) + enc_float(0.0)
    return out


def test_tiny_model_walks_the_tree_like_dlib() -> None:
    predictor = ShapePredictor.from_bytes(tiny_model())
    assert predictor.num_parts == 2
    image = np.zeros((101, 101, 3), dtype=np.uint8)
    image[:, :50] = (90, 90, 93)  # grey (90+90+93)//3 = 91 on the left
    # feature 0 (x=5) is bright, feature 1 (x=95) dark: 91 - 0 > 0, left leaf (+0.1)
    got = predictor.predict(image, Box(0, 0, 100, 100))
    np.testing.assert_array_equal(got, [[35, 50], [85, 50]])
    # mirrored: 0 - 91 is not > 0, right leaf (-0.1)
    got = predictor.predict(np.ascontiguousarray(image[:, ::-1]), Box(0, 0, 100, 100))
    np.testing.assert_array_equal(got, [[15, 50], [65, 50]])
    # both feature pixels outside the image read 0: 0 - 0 is not > 0
    got = predictor.predict(image, Box(-200, 0, -100, 100))
    np.testing.assert_array_equal(got, [[-185, 50], [-135, 50]])


def test_tiny_model_with_bad_split_index_is_a_format_error() -> None:
    with pytest.raises(ModelFormatError):
        ShapePredictor.from_bytes(tiny_model(split_index=7))


def test_read_int_run_decodes_a_run_and_rejects_truncation() -> None:
    values = [0, 2, 4736, -28, 2**40, -(2**62)]
    data = b"".join(enc_int(v) for v in values)
    reader = DlibReader(data)
    assert reader.read_int_run(2).tolist() == values[:2]
    assert reader.read_int_run().tolist() == values[2:]
    assert reader.at_end()
    with pytest.raises(ModelFormatError):
        DlibReader(data[:-1]).read_int_run()
    with pytest.raises(ModelFormatError):
        DlibReader(b"\x30\x01").read_int_run()
