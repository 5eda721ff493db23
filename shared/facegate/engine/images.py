"""Decoding uploaded bytes into 8-bit RGB arrays, safely.

Everything a camera (or an attacker) can send ends here: empty bodies,
truncated JPEGs, text, decompression bombs. Each becomes
:class:`facegate.core.errors.ImageError` with a short reason; nothing else
escapes.

Bombs are refused from the header, before a pixel is decoded, so the memory
one upload can cost is bounded (a few times 3 bytes x ``max_pixels`` at the
peak, ~150 MB at the default 16.8 MP):

- more than ``max_pixels`` pixels (default 4096 x 4096: a door camera sends
  1-8 MP; a 6000 x 6000 PNG is refused). A larger JPEG is decoded at 1/2,
  1/4 or 1/8 of its size instead (the decoder's own DCT scaling, so the
  full-size pixels never exist): a 48 MP phone photo enrols at 12 MP;
- above :data:`EXPANSION_FREE_PIXELS`, a decoded size more than
  ``max_expansion`` times the compressed bytes (default 200): a photo
  compresses 5-30x as JPEG and 1.5-4x as PNG; a one-colour PNG of 6000 x
  6000 (117 KiB for 108 MB of pixels, 900x) is a bomb, and so is a 4000 x
  4000 one that fits the pixel limit.

Whatever the file holds, the result is ``(H, W, 3)`` uint8 RGB the way the
picture is meant to be seen: EXIF orientation applied; 16-bit samples scaled
to 8 bits (not clipped); palette images through their palette, transparency
included; images with alpha composited over white; CMYK, YCbCr, grey and
1-bit converted.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from facegate.core.errors import ImageError
from facegate.engine.types import Image

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Default cap on width x height (16.8 MP): far above any door camera."""

DEFAULT_MAX_EXPANSION = 200.0
"""Default cap on decoded RGB bytes per compressed byte, for large images."""

EXPANSION_FREE_PIXELS = 4_000_000
"""Up to this many pixels (12 MB of RGB) the expansion is not checked: a
dark or flat small frame compresses very well and costs little."""

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})

_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def _check_header(pil: PILImage.Image, size: int, max_pixels: int, max_expansion: float) -> None:
    """Refuse from the header alone; shrink a large JPEG's decode (``draft``)."""
    if pil.format not in ALLOWED_FORMATS:
        raise ImageError(f"unsupported image format {pil.format!r}")
    width, height = pil.size
    if width <= 0 or height <= 0:
        raise ImageError(f"image declares an empty size {width}x{height}")
    pixels = width * height
    if pixels > max_pixels and pil.format in ("JPEG", "MPO"):
        scale = 2
        while scale < 8 and pixels > max_pixels * scale * scale:
            scale *= 2
        pil.draft("RGB", (-(-width // scale), -(-height // scale)))
        width, height = pil.size
        pixels = width * height
    if pixels > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} = {pixels} pixels (limit {max_pixels})"
        )
    expansion = pixels * 3 / max(size, 1)
    if pixels > EXPANSION_FREE_PIXELS and expansion > max_expansion:
        raise ImageError(
            f"refused as a decompression bomb: {width}x{height} from {size} bytes "
            f"({expansion:.0f}x expansion, limit {max_expansion:.0f}x)"
        )


def _sixteen_to_eight(pil: PILImage.Image) -> PILImage.Image:
    """16-bit (or 32-bit integer) grey to 8-bit grey, scaled: 65535 -> 255."""
    wide = np.asarray(pil).astype(np.uint32)
    return PILImage.fromarray(((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8))


def to_rgb(pil: PILImage.Image) -> PILImage.Image:
    """The picture as 8-bit RGB, as it is meant to be seen (see the module docstring)."""
    mode = pil.mode
    if mode == "RGB":
        return pil
    if mode in _SIXTEEN_BIT:
        return _sixteen_to_eight(pil).convert("RGB")
    if mode == "P":
        pil = pil.convert("RGBA" if "transparency" in pil.info else "RGB")
        mode = pil.mode
    if mode in _ALPHA:
        rgba = pil.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    return pil.convert("RGB")


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_expansion: float = DEFAULT_MAX_EXPANSION,
) -> Image:
    """Decode JPEG/PNG/WebP/BMP bytes into an ``(H, W, 3)`` uint8 RGB array.

    Raises :class:`ImageError` for empty, truncated, unknown, oversized or
    bomb-like input (checked from the header, before decoding).
    """
    if not data:
        raise ImageError("empty upload (0 bytes)")
    if max_pixels <= 0 or max_expansion <= 0:
        raise ValueError("max_pixels and max_expansion must be positive")
    try:
        with warnings.catch_warnings():
            # Our own limits are checked below; PIL's bomb warning must not
            # turn into an exception elsewhere (pytest runs warnings as errors).
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            pil = PILImage.open(io.BytesIO(data))
            _check_header(pil, len(data), max_pixels, max_expansion)
            pil.load()
            ImageOps.exif_transpose(pil, in_place=True)
            rgb = to_rgb(pil)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError("not an image (unrecognised format)") from exc
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as exc:
        # Truncated streams, corrupt headers, bad chunks and odd modes land here.
        raise ImageError(f"corrupt or truncated image: {exc}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"unexpected decoded shape {array.shape}")
    return np.ascontiguousarray(array)


def load_image_file(
    path: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_expansion: float = DEFAULT_MAX_EXPANSION,
) -> Image:
    """Read and decode an image file; errors name the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return decode_image(data, max_pixels=max_pixels, max_expansion=max_expansion)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from exc
