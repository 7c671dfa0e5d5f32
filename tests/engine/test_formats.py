"""Format table, negotiation and encoder options."""

from __future__ import annotations

import pytest

from engine.formats import FORMATS, alpha_fallback, available, gif_bitdepth, negotiate, quality


def test_every_format_row_is_consistent():
    for ext, fmt in FORMATS.items():
        # blur is rokka's BlurHash "format": text, not an image
        assert fmt.ext == ext and fmt.mime.startswith("text/" if ext == "blur" else "image/")
        assert (fmt.quality_key is None) == (fmt.default_quality is None)


def test_capabilities_are_detected_at_runtime():
    assert available("jpg") and available("png") and available("avif")
    # the bundled libvips has no jxlsave and no HEVC encoder: engine/foreign.py encodes both
    assert available("jxl") and available("heic")
    assert not available("bmp")


CHROME = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"


@pytest.mark.parametrize(
    ("requested", "accept", "autoformat", "expected"),
    [
        ("jpg", CHROME, False, ("jpg", False)),
        ("jpg", CHROME, True, ("avif", True)),
        ("png", "image/webp,*/*", True, ("webp", True)),
        ("jpg", "image/avif;q=0,image/webp", True, ("webp", True)),
        ("jpg", "*/*", True, ("jpg", False)),
        ("jpg", None, True, ("jpg", False)),
        ("gif", CHROME, True, ("webp", True)),
        ("webp", "image/webp", True, ("webp", False)),
        ("jpg", "image/webp,image/avif,image/jxl,image/heic,*/*", True, ("avif", True)),
        ("jpg", "image/jxl,image/webp", True, ("jxl", True)),
        ("png", "image/jxl", True, ("jxl", True)),
        ("gif", "image/jxl,image/webp", True, ("webp", True)),
    ],
)
def test_negotiate(requested, accept, autoformat, expected):
    assert negotiate(requested, accept, autoformat) == expected


@pytest.mark.parametrize(
    ("ext", "options", "expected"),
    [
        ("jpg", {"jpg.quality": 80}, 80),
        # the dpr rule lives in stacks.resolve; an explicit 80 at dpr 2 stays 80 here
        ("jpg", {"jpg.quality": 80, "dpr": 2}, 80),
        ("jpg", {"jpg.quality": 90, "dpr": 2}, 90),
        ("jpg", {"jpg.quality": 80, "dpr": 1.5}, 80),
        ("webp", {"webp.quality": 70, "dpr": 3}, 70),
        ("avif", {"avif.quality": 45, "dpr": 3}, 45),
        ("jpg", {}, 80),
        ("png", {}, None),
    ],
)
def test_quality_and_dpr_rule(ext, options, expected):
    assert quality(FORMATS[ext], options) == expected


@pytest.mark.parametrize(
    ("requested", "exclude", "expected"),
    [
        ("jpg", None, ("avif", True)),
        ("jpg", "avif", ("webp", True)),
        ("jpg", "webp,avif", ("jpg", False)),
        ("jpg", "jxl,svg", ("avif", True)),
        ("png", "lossless_to_lossy", ("webp", True)),
        ("jpg", "lossless_to_lossy", ("avif", True)),
        ("gif", "webp", ("gif", False)),
    ],
)
def test_negotiate_honours_autoformat_exclude(requested, exclude, expected):
    assert negotiate(requested, "image/avif,image/webp", True, exclude) == expected


@pytest.mark.parametrize(
    ("options", "accept", "expected"),
    [
        ({"jpg.transparency.autoformat": "false"}, "image/webp", None),
        ({"jpg.transparency.autoformat": "true"}, "image/webp,*/*", "webp"),
        ({"jpg.transparency.autoformat": "true"}, "*/*", "png"),
        ({"jpg.transparency.autoformat": "true"}, None, "png"),
        ({"jpg.transparency.autoformat": "png"}, "image/webp", "webp"),
        ({"jpg.transparency.autoformat": "webp"}, "image/png", "png"),
        (
            {"jpg.transparency.autoformat": "true", "autoformat.exclude": "webp"},
            "image/webp",
            "png",
        ),
        ({"jpg.transparency.autoformat": "true", "jpg.transparency.convert": True}, None, None),
        ({"jpg.transparency.autoformat": "true", "transparency.color": "000000"}, None, None),
    ],
)
def test_alpha_fallback(options, accept, expected):
    assert alpha_fallback(options, accept) == expected


@pytest.mark.parametrize(("q", "bits"), [(1, 2), (10, 2), (35, 4), (60, 7), (70, 8), (100, 8)])
def test_gif_bitdepth(q, bits):
    assert gif_bitdepth(q) == bits
