"""The numpy ports of dlib's 5-point shape predictor and face-chip alignment
against dlib itself (``dlib-bin``) on real photos.

Measured when written (sample photos and 150 random LFW View 1 images, a
third of them rotated, HOG boxes plus random boxes, 607 faces): landmarks
identical (dlib returns integer pixels; max |diff| 0), chips identical (max
|diff| 0 over 41 M channel values). The chip bound below allows one grey
level on 1e-4 of the values: both sides compute the sampling map in double
but dlib solves it with an SVD pseudo-inverse, so a bilinear value that lands
within ~1e-12 of an integer could truncate differently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image as PILImage

from facegate.core.errors import ModelFormatError
from facegate.engine.chip import CHIP_SIZE, extract_chips, face_chip_details
from facegate.engine.shape_predictor import ShapePredictor, locate_model_file
from facegate.engine.types import Box, Image, LandmarkPredictor

pytestmark = [pytest.mark.model, pytest.mark.oracle]

Loader = Callable[[str], Image]
F32 = npt.NDArray[np.float32]

LANDMARK_BOUND = 1e-3
"""Pixels; dlib's parts are integers, so in practice this means equal."""

CHIP_MAX_DIFF = 1
CHIP_MAX_FRACTION = 1e-4

SAMPLES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
)


@pytest.fixture(scope="module")
def dlib_module() -> Any:
    return pytest.importorskip("dlib", reason="dlib-bin (dev dependency) is the oracle")


@pytest.fixture(scope="module")
def dlib_predictor(dlib_module: Any) -> Any:
    return dlib_module.shape_predictor(str(locate_model_file()))


@pytest.fixture(scope="module")
def hog(dlib_module: Any) -> Any:
    return dlib_module.get_frontal_face_detector()


@pytest.fixture(scope="module")
def predictor() -> ShapePredictor:
    return ShapePredictor.load()


def parts(shape: Any) -> F32:
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float32)


def random_rects(dlib: Any, image: Image, rng: np.random.Generator, n: int) -> list[Any]:
    """Arbitrary boxes, some of them partly outside the image."""
    h, w = image.shape[:2]
    out = []
    for _ in range(n):
        side = int(rng.integers(20, max(21, min(h, w))))
        left = int(rng.integers(-side // 2, w - side // 2))
        top = int(rng.integers(-side // 2, h - side // 2))
        out.append(dlib.rectangle(left, top, left + side, top + int(side * rng.uniform(0.8, 1.2))))
    return out


class Comparison:
    """Accumulates landmark and chip differences against dlib."""

    def __init__(self, dlib: Any, dlib_predictor: Any, predictor: ShapePredictor) -> None:
        self.dlib = dlib
        self.dlib_predictor = dlib_predictor
        self.predictor = predictor
        self.faces = 0
        self.landmark_max = 0.0
        self.chip_max = 0
        self.chip_differing = 0
        self.chip_values = 0

    def face(self, image: Image, rect: Any) -> tuple[F32, Image]:
        shape = self.dlib_predictor(image, rect)
        theirs = parts(shape)
        box = Box(rect.left(), rect.top(), rect.right(), rect.bottom())
        ours = self.predictor.predict(image, box)
        assert ours.shape == (5, 2) and ours.dtype == np.float32
        self.landmark_max = max(self.landmark_max, float(np.abs(ours - theirs).max()))
        their_chip = self.dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=0.25)
        chips, sizes = extract_chips(image, [theirs])
        diff = np.abs(chips[0].astype(np.int16) - their_chip.astype(np.int16))
        self.chip_max = max(self.chip_max, int(diff.max()))
        self.chip_differing += int((diff > 0).sum())
        self.chip_values += diff.size
        details = self.dlib.get_face_chip_details(shape, CHIP_SIZE, 0.25)
        assert sizes[0] == pytest.approx(details.rect.width(), rel=1e-6)
        self.faces += 1
        return theirs, chips[0]

    def check(self) -> None:
        assert self.faces > 0
        assert self.landmark_max <= LANDMARK_BOUND, self.landmark_max
        assert self.chip_max <= CHIP_MAX_DIFF, self.chip_max
        assert self.chip_differing <= CHIP_MAX_FRACTION * self.chip_values, self.chip_differing


@pytest.fixture
def compare(dlib_module: Any, dlib_predictor: Any, predictor: ShapePredictor) -> Comparison:
    return Comparison(dlib_module, dlib_predictor, predictor)


def test_model_parses_into_dlibs_structure(predictor: ShapePredictor) -> None:
    assert isinstance(predictor, LandmarkPredictor)
    assert predictor.num_parts == 5
    assert predictor.initial_shape.shape == (10,)
    # the initial shape is a mean face inside the unit box
    assert ((predictor.initial_shape > 0) & (predictor.initial_shape < 1)).all()


@pytest.mark.parametrize(
    "mutilate",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"\x01\x02" + b[2:],  # version 2
        lambda b: b + b"\x01\x00",  # trailing data
        lambda b: b[:2] + b"\x01\x0b" + b[4:],  # initial shape of 11 values
        lambda b: b"",
    ],
)
def test_corrupt_model_raises_model_format_error(mutilate: Callable[[bytes], bytes]) -> None:
    data = locate_model_file().read_bytes()
    with pytest.raises(ModelFormatError):
        ShapePredictor.from_bytes(mutilate(data), name="mutilated")


def test_landmarks_and_chips_equal_dlib_on_samples(
    compare: Comparison, dlib_module: Any, hog: Any, load_sample: Loader
) -> None:
    rng = np.random.default_rng(7)
    hog_faces = 0
    for name in SAMPLES:
        image = load_sample(name)
        found = list(hog(image, 1))
        hog_faces += len(found)
        for rect in found + random_rects(dlib_module, image, rng, 8):
            compare.face(image, rect)
    assert hog_faces >= 5
    compare.check()


def test_box_coordinates_round_like_dlib(
    predictor: ShapePredictor, dlib_module: Any, dlib_predictor: Any, load_sample: Loader
) -> None:
    image = load_sample("obama.jpg")
    expected = parts(dlib_predictor(image, dlib_module.rectangle(350, 140, 620, 410)))
    fractional = Box(349.5, 139.6, 620.49, 409.5000001)
    assert np.array_equal(predictor.predict(image, fractional), expected)
    assert np.array_equal(
        predictor.predict(image, Box(349.49, 140, 620, 410)),
        parts(dlib_predictor(image, dlib_module.rectangle(349, 140, 620, 410))),
    )


def test_large_face_takes_the_pyramid_path(
    compare: Comparison, dlib_module: Any, hog: Any, load_sample: Loader
) -> None:
    small = load_sample("obama.jpg")
    rect = hog(small, 1)[0]
    image = np.ascontiguousarray(np.repeat(np.repeat(small, 3, axis=0), 3, axis=1))
    big = dlib_module.rectangle(
        rect.left() * 3, rect.top() * 3, rect.right() * 3, rect.bottom() * 3
    )
    landmarks, chip = compare.face(image, big)
    details = face_chip_details(landmarks)
    # two levels of pyramid_down<2> (rect_down area still > 150*150 twice)
    assert details.rect.width > 600
    assert details.rect.down().down().area > CHIP_SIZE * CHIP_SIZE
    assert chip.std() > 20  # a real face, not an empty chip
    compare.check()


def test_face_at_the_border_is_zero_filled(
    compare: Comparison, dlib_module: Any, hog: Any, load_sample: Loader
) -> None:
    image = load_sample("obama.jpg")
    rect = hog(image, 1)[0]
    # crop so that the left part of the face region falls outside the image
    x0 = rect.left() + rect.width() // 3
    cropped = np.ascontiguousarray(image[:, x0:])
    moved = dlib_module.rectangle(rect.left() - x0, rect.top(), rect.right() - x0, rect.bottom())
    _, chip = compare.face(cropped, moved)
    dark_columns = (chip.reshape(CHIP_SIZE, -1) == 0).all(axis=0).reshape(CHIP_SIZE, 3).all(axis=1)
    assert dark_columns[:10].all()  # the left edge of the chip is outside: zeros
    assert not dark_columns[-50:].any()
    compare.check()


def rotate_about(image: Image, degrees: float, centre: tuple[float, float]) -> Image:
    pil = PILImage.fromarray(image).rotate(
        degrees, resample=PILImage.Resampling.BILINEAR, center=centre
    )
    return np.asarray(pil)


def test_rotated_face(compare: Comparison, dlib_module: Any, hog: Any, load_sample: Loader) -> None:
    image = load_sample("biden.jpg")
    rect = hog(image, 1)[0]
    centre = ((rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2)
    upright = face_chip_details(compare.face(image, rect)[0])
    for degrees in (-35.0, -12.0, 20.0, 40.0):
        rotated = rotate_about(image, degrees, centre)
        landmarks, chip = compare.face(rotated, rect)
        details = face_chip_details(landmarks)
        # PIL rotates counter-clockwise on screen: the chip angle goes negative
        assert np.degrees(details.angle - upright.angle) == pytest.approx(-degrees, abs=6.0)
        assert chip.std() > 20
    compare.check()


def test_no_faces_gives_empty_arrays(load_sample: Loader) -> None:
    chips, sizes = extract_chips(load_sample("obama.jpg"), [])
    assert chips.shape == (0, CHIP_SIZE, CHIP_SIZE, 3) and chips.dtype == np.uint8
    assert sizes.shape == (0,) and sizes.dtype == np.float32


def test_several_faces_in_one_call(
    predictor: ShapePredictor, dlib_module: Any, dlib_predictor: Any, load_sample: Loader
) -> None:
    image = load_sample("obama.jpg")
    boxes = [Box(350, 140, 620, 410), Box(300, 100, 700, 500)]
    landmarks = [predictor.predict(image, b) for b in boxes]
    chips, sizes = extract_chips(image, landmarks)
    assert chips.shape == (2, CHIP_SIZE, CHIP_SIZE, 3)
    for lm, chip in zip(landmarks, chips, strict=True):
        shape = dlib_module.full_object_detection(
            dlib_module.rectangle(0, 0, 1, 1), [dlib_module.point(int(x), int(y)) for x, y in lm]
        )
        assert np.array_equal(chip, dlib_module.get_face_chip(image, shape, size=150, padding=0.25))
    assert (sizes > 200).all()


def lfw_images(lfw_dir: Path, count: int) -> Iterator[Path]:
    files = sorted((lfw_dir / "images").rglob("*.jpg"))
    if not files:
        pytest.skip(f"no images under {lfw_dir / 'images'}")
    rng = np.random.default_rng(11)
    for index in rng.choice(len(files), size=min(count, len(files)), replace=False):
        yield files[int(index)]


@pytest.mark.lfw
def test_landmarks_and_chips_equal_dlib_on_lfw(
    compare: Comparison, dlib_module: Any, hog: Any, lfw_dir: Path
) -> None:
    from facegate.engine.images import load_image_file

    rng = np.random.default_rng(3)
    for path in lfw_images(lfw_dir, 40):
        image = load_image_file(str(path))
        if rng.random() < 0.3:
            image = rotate_about(image, float(rng.uniform(-40, 40)), (125.0, 125.0))
        for rect in list(hog(image, 1)) + random_rects(dlib_module, image, rng, 2):
            compare.face(image, rect)
    assert compare.faces >= 80
    compare.check()
