"""Decoding uploaded bytes into RGB arrays, safely.

Everything a camera (or an attacker) can send ends here: empty bodies,
truncated JPEGs, text, decompression bombs (a small PNG declaring 50000x50000
pixels). Each becomes :class:`facegate.core.errors.ImageError` with a short reason;
nothing else escapes. The pixel limit is checked from the header, before any
pixel is decoded.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from facegate.core.errors import ImageError
from facegate.engine.types import Image

DEFAULT_MAX_PIXELS = 40_000_000
"""Default cap on width x height (about 7,700 x 5,200): far above any door camera."""

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Decode JPEG/PNG/WebP/BMP bytes into an ``(H, W, 3)`` uint8 RGB array.

    EXIF orientation is applied; palette, grey, 16-bit, CMYK and alpha images
    are converted to RGB (alpha dropped). Raises :class:`ImageError` for empty,
    truncated, unknown or oversized input.
    """
    if not data:
        raise ImageError("empty upload (0 bytes)")
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    try:
        with warnings.catch_warnings():
            # Our own limit is checked below; PIL's bomb warning must not
            # turn into an exception elsewhere (pytest runs warnings as errors).
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            pil = PILImage.open(io.BytesIO(data))
            if pil.format not in ALLOWED_FORMATS:
                raise ImageError(f"unsupported image format {pil.format!r}")
            width, height = pil.size
            if width <= 0 or height <= 0:
                raise ImageError(f"image declares an empty size {width}x{height}")
            if width * height > max_pixels:
                raise ImageError(
                    f"image too large: {width}x{height} = {width * height} pixels "
                    f"(limit {max_pixels})"
                )
            pil.load()
            upright = ImageOps.exif_transpose(pil) or pil
            rgb = upright.convert("RGB")
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError("not an image (unrecognised format)") from exc
    except PILImage.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated streams, corrupt headers and bad chunks land here.
        raise ImageError(f"corrupt or truncated image: {exc}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"unexpected decoded shape {array.shape}")
    return np.ascontiguousarray(array)


def load_image_file(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Read and decode an image file; errors name the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return decode_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from exc
