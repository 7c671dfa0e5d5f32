"""probe/inspect: identification, limits before decoding, hostile files."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import pyvips

import engine
from tests.engine.conftest import jpeg, png, scene


def _noise_jpeg(width: int = 600, height: int = 400) -> bytes:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return jpeg(pyvips.Image.new_from_array(arr, interpretation="srgb"))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height and carries almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "fmt", "mime"),
    [
        (png(scene(40, 30)), "png", "image/png"),
        (jpeg(scene(40, 30)), "jpg", "image/jpeg"),
        (bytes(scene(40, 30).webpsave_buffer()), "webp", "image/webp"),
        (bytes(scene(40, 30).gifsave_buffer()), "gif", "image/gif"),
        (bytes(scene(40, 30).tiffsave_buffer()), "tiff", "image/tiff"),
        (bytes(scene(40, 30).heifsave_buffer(compression="av1")), "avif", "image/avif"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"/>',
            "svg",
            "image/svg+xml",
        ),
    ],
)
def test_probe_identifies_formats(data: bytes, fmt: str, mime: str):
    info = engine.probe(data)
    assert (info.width, info.height, info.format, info.mimetype) == (40, 30, fmt, mime)
    assert not info.animated and info.orientation == 1


def test_probe_reports_transparency():
    assert engine.probe(png(scene(10, 10).bandjoin(255))).opaque
    assert not engine.probe(png(scene(10, 10).bandjoin(254))).opaque


def test_probe_animated_gif():
    pages = [scene(20, 10, square=(i, 0, 5)) for i in range(3)]
    strip = pyvips.Image.arrayjoin(pages, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 10)
    info = engine.probe(bytes(strip.gifsave_buffer()))
    assert (info.width, info.height, info.animated, info.n_pages) == (20, 10, True, 3)
    with pytest.raises(engine.TooManyPixels):
        engine.probe(bytes(strip.gifsave_buffer()), max_frames=2)
    with pytest.raises(engine.TooManyPixels):
        engine.probe(bytes(strip.gifsave_buffer()), max_pixels=599)


def test_probe_cartman_svg_from_rokka_recordings():
    path = "/work/shared/conformance/rokka-js-recordings/cartman.svg"
    with open(path, "rb") as f:
        info = engine.probe(f.read())
    assert info.format == "svg" and info.width > 0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", engine.UnsupportedImage),
        (b"hello, I am plain text\n" * 10, engine.UnsupportedImage),
        (b"<html><body>nope</body></html>", engine.UnsupportedImage),
        (_noise_jpeg()[: len(_noise_jpeg()) // 2], engine.UnsupportedImage),
        (_png_header_only(100_000, 100_000), engine.TooManyPixels),
        (b"P6\n2 2\n255\n" + bytes(12), engine.UnsupportedImage),  # PPM: not allowed
    ],
    ids=["empty", "text", "html", "truncated-jpeg", "png-bomb-header", "ppm"],
)
def test_probe_rejects_hostile_input(data: bytes, error: type[engine.EngineError]):
    with pytest.raises(error) as err:
        engine.probe(data)
    assert err.value.status == 422


def test_png_bomb_is_refused_from_the_header_fast():
    import time

    start = time.perf_counter()
    with pytest.raises(engine.TooManyPixels):
        engine.probe(_png_header_only(100_000, 100_000))
    assert time.perf_counter() - start < 0.5


def test_inspect_skips_decoding_but_probe_does_not():
    truncated = _noise_jpeg()[:3000]
    assert engine.inspect(truncated).width == 600
    with pytest.raises(engine.UnsupportedImage):
        engine.probe(truncated)


def test_exif_orientation_swaps_display_size():
    image = scene(40, 30).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    info = engine.probe(jpeg(image))
    assert (info.width, info.height, info.orientation) == (30, 40, 6)


def test_svg_is_only_loadable_from_buffers(tmp_path):
    path = tmp_path / "x.svg"
    path.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_file(str(path))
