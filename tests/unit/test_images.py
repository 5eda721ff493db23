"""Decoding untrusted uploads: every bad input becomes ImageError, good ones decode."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from facegate.core.errors import ImageError
from facegate.core.keys import IMAGE_CONTENT_TYPES, IMAGE_EXTENSIONS
from facegate.engine.images import ALLOWED_FORMATS, decode_image

pytestmark = pytest.mark.unit


def _encode(array: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def test_png_round_trips_exactly() -> None:
    img = _gradient()
    out = decode_image(_encode(img, "PNG"))
    assert out.dtype == np.uint8
    assert out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, img)


def test_jpeg_decodes_close_to_source() -> None:
    img = _gradient()
    out = decode_image(_encode(img, "JPEG", quality=95))
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 6


def test_rgba_grey_and_palette_become_rgb() -> None:
    rgba = np.dstack([_gradient(), np.full((40, 60), 7, np.uint8)])
    assert decode_image(_encode(rgba, "PNG")).shape == (40, 60, 3)
    grey = _gradient()[:, :, 0]
    out = decode_image(_encode(grey, "PNG"))
    assert out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out[:, :, 0], grey)
    np.testing.assert_array_equal(out[:, :, 2], grey)


def test_exif_orientation_is_applied() -> None:
    img = _gradient(20, 50)
    pil = PILImage.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", exif=exif, quality=95)
    out = decode_image(buf.getvalue())
    assert out.shape == (50, 20, 3)


def test_empty_bytes() -> None:
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_text_is_not_an_image() -> None:
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"hello, this is not a picture\n" * 10)


def test_truncated_jpeg() -> None:
    data = _encode(_gradient(200, 200), "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"truncated|corrupt"):
        decode_image(data[: len(data) // 2])


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = _png_declaring(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(ImageError, match="too large"):
        decode_image(bomb)


def test_pixel_limit_is_configurable() -> None:
    data = _encode(_gradient(40, 60), "PNG")
    with pytest.raises(ImageError, match="too large"):
        decode_image(data, max_pixels=40 * 60 - 1)
    assert decode_image(data, max_pixels=40 * 60).shape == (40, 60, 3)


def test_unsupported_format_is_refused() -> None:
    buf = io.BytesIO()
    PILImage.fromarray(_gradient()).save(buf, format="TIFF")
    with pytest.raises(ImageError, match="unsupported"):
        decode_image(buf.getvalue())


def test_ingest_accepts_exactly_what_the_engine_decodes() -> None:
    """Every extension ingest lets through decodes; the engine's formats all have one."""
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP"}
    assert set(IMAGE_EXTENSIONS) == set(pil_format)
    for ext, fmt in pil_format.items():
        out = io.BytesIO()
        PILImage.new("RGB", (8, 6), (10, 200, 30)).save(out, format=fmt)
        assert decode_image(out.getvalue()).shape == (6, 8, 3), ext
    assert set(pil_format.values()) | {"MPO"} == set(ALLOWED_FORMATS)  # MPO: multi-picture JPEG
    assert set(IMAGE_CONTENT_TYPES.values()) <= set(IMAGE_EXTENSIONS)
