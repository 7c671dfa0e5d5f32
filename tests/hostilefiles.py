"""Images for the hostile-input tests and the load test (benchmarks/test_load.py), generated
in memory.

Two families:

- realistic sources: photo-like JPEGs (gradients + blurred noise, which libjpeg cannot
  compress away) and a PNG with an alpha channel;
- hostile files: small files that are expensive to decode or render. Each hostile
  builder takes a variant number ``n`` and returns different bytes for each ``n`` at the
  same cost, so an attacker can defeat deduplication of uploads.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def photo_jpeg(width: int, height: int, seed: int, quality: int = 85) -> bytes:
    """A ``width`` x ``height`` sRGB JPEG that looks like a photo to an encoder: smooth
    colour gradients plus blurred gaussian noise (``seed`` makes it unique)."""
    return bytes(_photo(width, height, seed).jpegsave_buffer(Q=quality))


def photo_png_with_alpha(width: int, height: int, seed: int) -> bytes:
    """A ``width`` x ``height`` RGBA PNG: a photo-like image with a radial alpha ramp."""
    import pyvips

    xyz = pyvips.Image.xyz(width, height) - [width / 2, height / 2]
    distance = (xyz[0] ** 2 + xyz[1] ** 2) ** 0.5
    alpha = (255 - distance * (255 / max(width, height))).cast("uchar")
    return bytes(_photo(width, height, seed).bandjoin(alpha).pngsave_buffer(compression=6))


def _photo(width: int, height: int, seed: int):  # -> pyvips.Image
    import pyvips

    xyz = pyvips.Image.xyz(width, height)
    red = xyz[0] * (180 / width) + 40
    green = xyz[1] * (160 / height) + 50
    blue = (xyz[0] + xyz[1]) * (120 / (width + height)) + 60
    noise = pyvips.Image.gaussnoise(width, height, sigma=28, mean=0, seed=seed).gaussblur(0.8)
    image = (red.bandjoin([green, blue]) + noise).cast("uchar")
    return image.copy(interpretation="srgb")


def jpeg_variant(jpeg: bytes, n: int) -> bytes:
    """``jpeg`` with a comment segment naming ``n`` after SOI: same pixels, new bytes."""
    text = f"variant {n}".encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


# -- hostile files --------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_ihdr(width: int, height: int) -> bytes:
    # 8-bit greyscale, deflate, no filter method, no interlace.
    return _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))


def png_header_bomb(n: int) -> bytes:
    """A PNG of under 200 bytes declaring ~100000x100000 px (10 gigapixels); its pixel
    data is a single row. Libvips' default ``fail_on`` decodes it to zeros for seconds."""
    side = 100_000 - n % 1000
    idat = _png_chunk(b"IDAT", zlib.compress(bytes(1 + side), 9))
    return PNG_SIGNATURE + _png_ihdr(side, side) + idat + _png_chunk(b"IEND", b"")


@cache
def _zip_bomb_idat(side: int) -> bytes:
    compressor = zlib.compressobj(9)
    row = bytes(1 + side)  # filter byte 0 + zeros
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return _png_chunk(b"IDAT", b"".join(parts))


def png_zip_bomb(n: int, side: int = 15_000) -> bytes:
    """A ~220 kB PNG of ``side`` x ``side`` zeros: 225 megapixels at the default side, the
    largest source the default ``max_source_pixels`` accepts. A tEXt chunk carries ``n``."""
    text = _png_chunk(b"tEXt", b"Comment\x00" + f"variant {n}".encode())
    return (
        PNG_SIGNATURE + _png_ihdr(side, side) + text + _zip_bomb_idat(side)
        + _png_chunk(b"IEND", b"")
    )  # fmt: skip


def webp_lossless_solid(n: int, side: int = 15_000) -> bytes:
    """A lossless WebP of 28 bytes, (``side`` - n % 1000) x ``side`` px of one colour.

    Written by hand (libwebp would need the whole 900 MB canvas in memory to encode it):
    a VP8L header, no transforms, no colour cache, and five one-symbol prefix codes, so
    every pixel costs zero bits.
    """
    width = side - n % 1000
    bits: list[tuple[int, int]] = [
        (width - 1, 14), (side - 1, 14), (0, 1), (0, 3),  # size, alpha hint, version 0
        (0, 1), (0, 1), (0, 1),  # no transform, no colour cache, no meta prefix codes
    ]  # fmt: skip
    # Green, red, blue, alpha, distance: "simple code", one symbol, 1-bit symbol 0.
    bits += [(1, 1), (0, 1), (0, 1), (0, 1)] * 5
    value, position = 0, 0
    for field, size in bits:
        value |= field << position
        position += size
    data = b"\x2f" + value.to_bytes((position + 7) // 8, "little")
    if len(data) % 2:
        data += b"\x00"  # RIFF chunks are padded to an even size
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@cache
def _gif_1000_frames(frames: int, side: int) -> bytes:
    import pyvips

    pages = [
        pyvips.Image.black(side, side).new_from_image([i % 256, (i * 7) % 256, (i * 13) % 256])
        for i in range(frames)
    ]
    strip = pyvips.Image.arrayjoin(pages, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    return bytes(strip.gifsave_buffer())


def gif_many_frames(n: int, frames: int = 1000, side: int = 100) -> bytes:
    """A GIF of ``frames`` (default 1000, the default ``max_source_frames``) solid-colour
    frames of ``side`` x ``side`` px, about 140 kB; a comment extension carries ``n``."""
    gif = _gif_1000_frames(frames, side)
    packed = gif[10]
    table = 3 << ((packed & 7) + 1) if packed & 0x80 else 0
    at = 13 + table  # after the header, the logical screen descriptor and the colour table
    text = f"variant {n}".encode()
    return gif[:at] + b"\x21\xfe" + bytes([len(text)]) + text + b"\x00" + gif[at:]


def svg_filter_bomb(n: int, side: int = 15_000) -> bytes:
    """A ~300-byte SVG declaring ``side`` x ``side`` px (225 MP by default) covered by a
    10-octave turbulence and a huge gaussian blur. (Measured with librsvg in libvips 8.18:
    3000x3000 of it takes 23 s and 300 MB to rasterise.)"""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}">'
        f"<!-- variant {n} -->"
        '<filter id="f" x="0" y="0" width="100%" height="100%">'
        '<feTurbulence baseFrequency="0.05" numOctaves="10"/>'
        '<feGaussianBlur stdDeviation="1000"/></filter>'
        '<rect width="100%" height="100%" filter="url(#f)"/></svg>'
    ).encode()


def junk_upload(megabytes: int = 140) -> bytes:
    """``megabytes`` MiB that start like a JPEG and are zeros after: just under the default
    ``max_upload_bytes`` (150 MiB), so the whole body is accepted and read."""
    return b"\xff\xd8\xff\xe0" + bytes(megabytes * 2**20 - 4)
