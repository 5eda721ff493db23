"""Checking uploaded photos before anything is stored (no HTTP here).

Every photo of a form is checked first: size, that it decodes, that it is
one of the formats the engine reads. One bad photo refuses the whole form,
so nothing is half-written (the encoder's own checks, face count and
quality, come after, through :meth:`facegate.clients.admin.Admin.enroll`,
which is all or nothing as well)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}


@dataclass(frozen=True)
class Checked:
    name: str
    data: bytes
    problem: str | None


def check_photo(name: str, data: bytes, max_bytes: int) -> Checked:
    """``problem`` ``None``: ``data`` is an image the engine can read; the
    name is given the extension of its real format."""
    stem = (name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "photo")[:60]
    if not data:
        return Checked(name, data, "empty file")
    if len(data) > max_bytes:
        return Checked(name, b"", f"too large ({len(data)} bytes > {max_bytes})")
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a decompression bomb is refused, not decoded
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                image.verify()
    except Exception:  # PIL raises many kinds for a non-image
        return Checked(name, b"", "not an image (JPEG, PNG, WebP or BMP)")
    if fmt not in FORMATS:
        what = fmt or "unknown"
        return Checked(name, b"", f"{what} images are not accepted (JPEG, PNG, WebP, BMP)")
    return Checked(f"{stem}.{FORMATS[fmt]}", data, None)


__all__ = ["FORMATS", "Checked", "check_photo"]
