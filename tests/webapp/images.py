"""Small synthetic images for the source image tests, built in memory."""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any

import numpy as np
import pyvips


def png(width: int = 32, height: int = 24, *, seed: int = 0, alpha: bool = False) -> bytes:
    """A PNG of random pixels; different ``seed`` values give different bytes."""
    rng = np.random.default_rng(seed)
    bands = 4 if alpha else 3
    pixels = rng.integers(0, 256, size=(height, width, bands), dtype=np.uint8)
    if alpha:
        pixels[..., 3] = 255
    image = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb")
    return image.pngsave_buffer()


def jpeg(width: int = 300, height: int = 200, *, orientation: int | None = None) -> bytes:
    """A noisy JPEG, optionally with an EXIF orientation tag."""
    rng = np.random.default_rng(width * 7 + height)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb")
    if orientation is not None:
        image = image.copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image.jpegsave_buffer(Q=90)


def cmyk_jpeg() -> bytes:
    """A 4-band CMYK JPEG."""
    return (pyvips.Image.black(50, 40, bands=4) + 60).copy(interpretation="cmyk").jpegsave_buffer()


def png16() -> bytes:
    """A 16-bit RGB PNG."""
    image = (pyvips.Image.black(20, 10, bands=3) + 30000).cast("ushort")
    return image.copy(interpretation="rgb16").pngsave_buffer()


def gif(frames: int, size: int = 10) -> bytes:
    """An animated GIF with ``frames`` distinct frames of ``size`` x ``size``."""
    pages = [
        (pyvips.Image.black(size, size, bands=3) + (i * 37) % 256).cast("uchar")
        for i in range(frames)
    ]
    strip = pyvips.Image.arrayjoin(pages, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", size)
    return strip.gifsave_buffer()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` but holds (almost) no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 10)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def multipart(
    data: bytes,
    name: str = "image.png",
    *,
    field: str = "filedata",
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A form ``data=`` argument for the Flask test client: one file plus text fields.

    Non-string field values are JSON-encoded once.
    """
    form: dict[str, Any] = {field: (io.BytesIO(data), name)}
    for key, value in (fields or {}).items():
        form[key] = value if isinstance(value, str) else json.dumps(value)
    return form
