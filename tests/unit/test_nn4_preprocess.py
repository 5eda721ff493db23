"""nn4.small2's input preparation (numpy and Pillow only): the notebooks'
scaling and the 150 -> 96 px chip resize. The network itself is tested in
``tests/model/test_nn4.py`` (it needs TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.training.nn4 import preprocess_96, resize_chips_96

pytestmark = pytest.mark.unit


def test_preprocess_scales_like_the_notebook() -> None:
    img = np.zeros((96, 96, 3), dtype=np.uint8)
    img[0, 0] = (255, 51, 0)
    out = preprocess_96(img)
    assert out.shape == (1, 96, 96, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [1.0, 0.2, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="96, 96, 3"):
        preprocess_96(np.zeros((2, 150, 150, 3), dtype=np.uint8))


def test_resize_chips_keeps_content() -> None:
    chips = np.zeros((2, 150, 150, 3), dtype=np.uint8)
    chips[0] = 200
    chips[1, :, 75:] = 255  # right half white
    out = resize_chips_96(chips)
    assert out.shape == (2, 96, 96, 3) and out.dtype == np.uint8
    assert np.all(out[0] == 200)
    assert np.all(out[1, :, :47] == 0) and np.all(out[1, :, 49:] == 255)
