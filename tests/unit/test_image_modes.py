"""Every kind of picture decodes to the 8-bit RGB it shows, and bombs are
refused before their pixels exist (facegate.engine.images)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from facegate.core.errors import ImageError
from facegate.engine import images
from facegate.engine.images import decode_image

pytestmark = pytest.mark.unit


def _save(pil: PILImage.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png(width: int, height: int, depth: int, colour: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + \
        chunk(b"IEND", b"")


def test_sixteen_bit_grey_is_scaled_not_clipped_to_white() -> None:
    values = np.array([0, 257, 32896, 50000, 65535], dtype=">u2")
    data = _png(5, 1, 16, 0, [values.tobytes()])
    assert PILImage.open(io.BytesIO(data)).mode.startswith("I;16")
    out = decode_image(data)
    assert out.shape == (1, 5, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 195, 255])
    assert (out[0, :, 0] == out[0, :, 2]).all()


def test_sixteen_bit_rgb_keeps_its_colours() -> None:
    pixel = struct.pack(">HHH", 65535, 32896, 0)
    out = decode_image(_png(2, 2, 16, 2, [pixel * 2, pixel * 2]))
    np.testing.assert_array_equal(out[0, 0], [255, 128, 0])


def test_palette_with_and_without_transparency() -> None:
    pal = PILImage.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    pal.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    out = decode_image(_save(pal, "PNG"))
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [0, 0, 255])
    # index 1 transparent: shown over white (and no Pillow warning escapes)
    out = decode_image(_save(pal, "PNG", transparency=1))
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_is_composited_over_white(mode: str) -> None:
    colour = (40,) if mode == "LA" else (200, 30, 60)
    pil = PILImage.new(mode, (3, 1))
    pil.putdata([(*colour, 255), (*colour, 0), (*colour, 128)])
    out = decode_image(_save(pil, "PNG")).astype(int)
    solid = list(colour) * 3 if mode == "LA" else list(colour)
    np.testing.assert_array_equal(out[0, 0], solid[:3])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    half = [(c * 128 + 255 * 127) / 255 for c in solid[:3]]
    assert np.abs(out[0, 2] - half).max() <= 1


def test_cmyk_jpeg_comes_back_as_its_rgb() -> None:
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)
    data = _save(PILImage.fromarray(rgb).convert("CMYK"), "JPEG", quality=98)
    assert PILImage.open(io.BytesIO(data)).mode == "CMYK"
    out = decode_image(data)
    assert out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 4


def _marked() -> np.ndarray:
    """What the viewer must see: 30 x 20, a red block top left, blue bottom right."""
    img = np.full((20, 30, 3), 128, np.uint8)
    img[:5, :5] = (255, 0, 0)
    img[-5:, -5:] = (0, 0, 255)
    return img


# the stored picture for each EXIF orientation, given what must be shown
STORED = {
    1: lambda p: p,
    2: lambda p: p.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT),
    3: lambda p: p.transpose(PILImage.Transpose.ROTATE_180),
    4: lambda p: p.transpose(PILImage.Transpose.FLIP_TOP_BOTTOM),
    5: lambda p: p.transpose(PILImage.Transpose.TRANSPOSE),
    6: lambda p: p.transpose(PILImage.Transpose.ROTATE_90),
    7: lambda p: p.transpose(PILImage.Transpose.TRANSVERSE),
    8: lambda p: p.transpose(PILImage.Transpose.ROTATE_270),
}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    shown = _marked()
    stored = STORED[orientation](PILImage.fromarray(shown))
    exif = stored.getexif()
    exif[0x0112] = orientation
    np.testing.assert_array_equal(decode_image(_save(stored, "PNG", exif=exif)), shown)
    jpeg = decode_image(_save(stored, "JPEG", exif=exif, quality=95)).astype(int)
    assert jpeg.shape == shown.shape
    assert jpeg[1, 1, 0] > 200 and jpeg[-2, -2, 2] > 200  # red top left, blue bottom right


def _flat_png(side: int) -> bytes:
    return _save(PILImage.new("RGB", (side, side), (128, 128, 128)), "PNG")


def _refuse_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(self: PILImage.Image) -> None:
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(images.PILImage.Image, "load", forbidden)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", forbidden)


def test_the_issue_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """6000 x 6000 of one colour in 117 KiB (108 MB of RGB pixels)."""
    bomb = _flat_png(6000)
    assert 110_000 < len(bomb) < 125_000
    _refuse_loading(monkeypatch)
    with pytest.raises(ImageError, match="too large"):
        decode_image(bomb)


def test_a_bomb_within_the_pixel_limit_is_refused_by_its_expansion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bomb = _flat_png(4000)  # 16 MP, under the limit; 48 MB from ~50 kB
    _refuse_loading(monkeypatch)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(bomb)


def test_small_flat_frames_and_real_photos_are_not_taken_for_bombs() -> None:
    dark = _save(PILImage.new("RGB", (1920, 1080), (0, 0, 0)), "PNG")  # a camera at night
    assert len(dark) * 200 < 1920 * 1080 * 3
    assert decode_image(dark).shape == (1080, 1920, 3)
    rng = np.random.default_rng(3)
    photo = PILImage.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).resize(
        (3000, 2250), PILImage.Resampling.BILINEAR
    )
    assert decode_image(_save(photo, "JPEG", quality=85)).shape == (2250, 3000, 3)


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size() -> None:
    """A 6000 x 4000 JPEG (24 MP) comes out at 3000 x 2000: the DCT scaling
    of the decoder, the full-size pixels never exist."""
    rng = np.random.default_rng(5)
    small = PILImage.fromarray(rng.integers(0, 255, (400, 600, 3), dtype=np.uint8))
    data = _save(small.resize((6000, 4000), PILImage.Resampling.BILINEAR), "JPEG", quality=80)
    out = decode_image(data)
    assert out.shape == (2000, 3000, 3)
    assert decode_image(data, max_pixels=25_000_000).shape == (4000, 6000, 3)
    with pytest.raises(ImageError, match="too large"):
        decode_image(data, max_pixels=300_000)  # even 1/8 is 750 x 500
