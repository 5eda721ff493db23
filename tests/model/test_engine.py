"""The whole engine on real faces: photo in, faces with 128-d encodings out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from facegate.engine.types import FaceEncoder, Image

pytestmark = pytest.mark.model

Loader = Callable[[str], Image]


def _dist(a: Any, b: Any) -> float:
    return float(np.linalg.norm(a.encoding - b.encoding))


def test_one_face_per_portrait_with_sane_geometry(
    face_engine: FaceEncoder, load_sample: Loader
) -> None:
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        image = load_sample(name)
        (faces,) = face_engine.encode_images([image])
        assert len(faces) == 1, name
        face = faces[0]
        assert face.encoding.shape == (128,)
        assert face.encoding.dtype == np.float32
        assert np.all(np.isfinite(face.encoding))
        # dlib descriptors are not normalised, but have norms near 1
        assert 0.3 < float(np.linalg.norm(face.encoding)) < 2.0
        h, w = image.shape[:2]
        assert 0 <= face.box.left < face.box.right <= w
        assert 0 <= face.box.top < face.box.bottom <= h
        # landmarks sit inside the box: eyes above the nose
        marks = face.landmarks
        assert marks.shape == (5, 2)
        assert marks[:4, 1].mean() < marks[4, 1]
        assert face.size > 80
        assert 0.5 < face.quality <= 1.0


def test_same_person_close_different_people_far(
    face_engine: FaceEncoder, load_sample: Loader
) -> None:
    names = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]
    faces = [f[0] for f in face_engine.encode_images([load_sample(n) for n in names])]
    o1, o2, o3, biden = faces
    for a, b in [(o1, o2), (o1, o3), (o2, o3)]:
        assert _dist(a, b) < 0.5
    for o in (o1, o2, o3):
        assert _dist(o, biden) > 0.7


def test_batch_results_equal_single_results(face_engine: FaceEncoder, load_sample: Loader) -> None:
    a, b = load_sample("obama.jpg"), load_sample("biden.jpg")
    together = face_engine.encode_images([a, b])
    alone = [face_engine.encode_images([a])[0], face_engine.encode_images([b])[0]]
    for t, s in zip(together, alone, strict=True):
        assert len(t) == len(s) == 1
        np.testing.assert_allclose(t[0].encoding, s[0].encoding, atol=1e-5)
        np.testing.assert_allclose(t[0].landmarks, s[0].landmarks, atol=1e-3)


def test_no_face_in_a_gradient_and_in_noise(
    face_engine: FaceEncoder, rng: np.random.Generator
) -> None:
    y, x = np.mgrid[0:480, 0:640]
    gradient = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    noise = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    assert face_engine.encode_images([gradient, noise]) == [[], []]
    assert face_engine.encode_images([]) == []


def test_two_people_side_by_side_are_two_faces(
    face_engine: FaceEncoder, load_sample: Loader
) -> None:
    from PIL import Image as PILImage

    def fit(img: Image) -> Image:
        pil = PILImage.fromarray(img)
        pil.thumbnail((480, 480))
        return np.asarray(pil)

    left, right = fit(load_sample("obama.jpg")), fit(load_sample("biden.jpg"))
    h = max(left.shape[0], right.shape[0])
    canvas = np.zeros((h, left.shape[1] + right.shape[1], 3), np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    (faces,) = face_engine.encode_images([canvas])
    assert len(faces) == 2
    alone_obama = face_engine.encode_images([left])[0][0]
    xs = sorted(faces, key=lambda f: f.box.left)
    assert _dist(xs[0], alone_obama) < 0.2
    assert _dist(xs[1], alone_obama) > 0.7


def test_averaging_settings_are_part_of_the_model_id(face_engine: FaceEncoder) -> None:
    assert face_engine.model_id.startswith("dlib_resnet_v1-")
    assert face_engine.model_id.endswith("+mirror+lm0.9_1_1.1+zoom1_1.06")
    assert face_engine.dimension == 128


def test_embed_chips_rejects_wrong_shapes(face_engine: FaceEncoder) -> None:
    with pytest.raises(ValueError):
        face_engine.embed_chips(np.zeros((2, 150, 150), np.uint8))
    assert face_engine.embed_chips(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


def test_large_snapshots_are_searched_at_reduced_size_with_the_same_result(
    load_sample: Loader,
) -> None:
    """obama3.jpg is 1434x2333: detection on the 1024-px copy finds the same
    face (boxes within 3% of its size) as on the full image."""
    from facegate.engine.detector import DetectorConfig, MtcnnDetector

    image = load_sample("obama3.jpg")
    assert max(image.shape[:2]) > 1024
    full = MtcnnDetector(DetectorConfig(max_side=0)).detect([image])[0]
    reduced = MtcnnDetector(DetectorConfig(max_side=1024)).detect([image])[0]
    assert len(full) == len(reduced) == 1
    a, b = full[0], reduced[0]
    tolerance = 0.03 * a.width
    for x, y in ((a.left, b.left), (a.top, b.top), (a.right, b.right), (a.bottom, b.bottom)):
        assert abs(x - y) < tolerance
