"""Shrinking while decoding changes speed, never output, whatever the first operation is.

A leading resize (any format) and a leading crop followed by a downsizing resize (JPEG)
decode the source shrunk. A PNG of the same decoded pixels takes the full-size path for
crop-then-resize, so comparing the two checks the shortcut; for every other first operation
the JPEG and PNG renders must agree too, and every option of the first operation (sharpen
included) must show in the pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

import engine
from tests.engine.conftest import decode, jpeg, op, plan, png, red_centre, red_mask, scene
from tests.engine.test_render import _stored_for

# A large scene so that a 1/4 or 1/8 decode is possible for a small output.
W, H = 2400, 1600
SQUARE = (1700, 300, 160)
SUBJECT = {"subject_area": {"x": 1700, "y": 300, "width": 160, "height": 160}}


def _pair(display: pyvips.Image, orientation: int = 1) -> tuple[bytes, bytes]:
    """The same picture as a JPEG (possibly EXIF-rotated) and as a PNG of its decoded pixels."""
    jpg = jpeg(_stored_for(display, orientation))
    decoded = pyvips.Image.new_from_buffer(jpg, "").autorot()
    return jpg, png(decoded)


@pytest.mark.parametrize(
    "operations",
    [
        (op("crop", width=16, height=9, mode="ratio"), op("resize", width=300)),
        (op("crop", width=800, height=800), op("resize", width=200, height=200)),
        (op("crop", width=3, height=4, mode="ratio", anchor="left_top"), op("resize", height=100)),
    ],
)
@pytest.mark.parametrize("orientation", [1, 6])
def test_crop_then_resize_matches_full_size_decode(operations, orientation, monkeypatch):
    jpg, same_png = _pair(scene(W, H, square=SQUARE), orientation)
    shrinks: list[int] = []
    load = pyvips.Image.new_from_source  # JPEGs open from memory (engine.probe)

    def spy(data, options, **kwargs):  # noqa: ANN001, ANN202
        shrinks.append(kwargs.get("shrink", 1))
        return load(data, options, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_source", staticmethod(spy))
    shrunk = engine.render(plan(*operations), jpg, dynamic_metadata=SUBJECT)
    assert max(shrinks) >= 2, "the JPEG was decoded at full size"
    monkeypatch.undo()
    full = engine.render(plan(*operations), same_png, dynamic_metadata=SUBJECT)
    assert (shrunk.width, shrunk.height) == (full.width, full.height)
    a, b = decode(shrunk.body).astype(int), decode(full.body).astype(int)
    assert np.abs(a - b).mean() < 3.0
    if red_mask(b).any():
        assert red_centre(a) == pytest.approx(red_centre(b), abs=2.0)


def test_subject_stays_centred_through_shrunk_crop():
    jpg, _ = _pair(scene(W, H, square=SQUARE))
    p = plan(op("crop", width=1000, height=1000), op("resize", width=100, height=100))
    out = engine.render(p, jpg, dynamic_metadata=SUBJECT)
    assert (out.width, out.height) == (100, 100)
    # the 1000x1000 box centred on the square (1780, 380) is clamped to the top edge
    x, y = red_centre(decode(out.body))
    assert x == pytest.approx(49.5, abs=1.5)
    assert y == pytest.approx(38.0, abs=1.5)


def _detailed(width: int, height: int) -> pyvips.Image:
    """A photo-like sRGB image: gradients under 12 px blocks of random tone, so that detail
    survives a 1/8 shrink and the luminance entropy is well above 5 bits."""
    rng = np.random.default_rng(7)
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    base = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    blocks = rng.normal(0, 40, (height // 12 + 1, width // 12 + 1, 1))
    noise = np.repeat(np.repeat(blocks, 12, axis=0), 12, axis=1)[:height, :width]
    arr = np.clip(base + noise, 0, 255).astype(np.uint8)
    return pyvips.Image.new_from_array(arr, interpretation="srgb")


# Every kind of first operation the engine renders, each followed by a downsizing resize
# (the usual stack) or standing alone.
FIRST_OPERATIONS = [
    (op("resize", width=300),),
    (op("resize", width=300, sharpen=True),),
    (op("resize", width=200, height=200, mode="fill"),),
    (op("resize", width=200, height=100, mode="absolute", sharpen=True),),
    (op("resize", width=5000, upscale=False),),
    (op("crop", width=16, height=9, mode="ratio"), op("resize", width=300, sharpen=True)),
    (op("crop", width=600, height=600, anchor="smart"), op("resize", width=150)),
    (op("rotate", angle=90), op("resize", width=300)),
    (op("autorotate"), op("resize", width=300)),
    (op("trim"), op("resize", width=300)),
    (op("blur", sigma=2), op("resize", width=300)),
    (op("sharpen"), op("resize", width=300)),
    (op("grayscale"), op("resize", width=300)),
    (op("sepia"), op("resize", width=300)),
    (op("modulate", brightness=120), op("resize", width=300)),
    (op("multiply", factor_color="ff8000"), op("resize", width=300)),
    (op("alpha", mode="apply", opacity=60), op("resize", width=300)),
    (op("circlemask"), op("resize", width=300)),
    (op("noop"), op("resize", width=300)),
    (op("glitch", amount=3, random="r"), op("resize", width=300)),
    (op("svg2bitmap"), op("resize", width=300)),
    (op("primitive", count=5), op("resize", width=300)),
    # svgdynamic changes SVG sources only (tests/engine/test_svgdynamic.py).
]


@pytest.mark.parametrize("operations", FIRST_OPERATIONS, ids=lambda ops: ops[0].name)
def test_every_first_operation_matches_full_size_decode(operations):
    jpg, same_png = _pair(_detailed(W, H))
    shrunk = engine.render(plan(*operations), jpg)
    full = engine.render(plan(*operations), same_png)
    assert (shrunk.width, shrunk.height) == (full.width, full.height)
    a, b = decode(shrunk.body).astype(int), decode(full.body).astype(int)
    assert a.shape == b.shape
    # A JPEG shrunk in the DCT domain and a full decode resampled by libvips differ by a
    # few levels per pixel on texture this fine; the picture and its tones must not.
    assert np.abs(a - b).mean() < 6.5
    assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 1.5


def _sharpness(pixels: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: higher is sharper."""
    return float(np.abs(np.diff(pixels[..., :3].astype(int), axis=1)).mean())


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize(
    "lead",
    [(), (op("crop", width=16, height=9, mode="ratio"),)],
    ids=["resize-first", "crop-then-resize"],
)
def test_sharpen_on_first_resize_sharpens_a_detailed_image(fmt, lead):
    jpg, same_png = _pair(_detailed(W, H))
    source = jpg if fmt == "jpeg" else same_png
    plain = engine.render(plan(*lead, op("resize", width=400)), source)
    sharp = engine.render(plan(*lead, op("resize", width=400, sharpen=True)), source)
    assert (sharp.width, sharp.height) == (plain.width, plain.height)
    assert _sharpness(decode(sharp.body)) > _sharpness(decode(plain.body)) * 1.05


@pytest.mark.parametrize(
    "lead",
    [(), (op("crop", width=16, height=9, mode="ratio"),)],
    ids=["resize-first", "crop-then-resize"],
)
def test_sharpen_leaves_a_low_entropy_image_alone(lead):
    # Grey with one red square: about 0.1 bit of entropy, far below rokka's threshold of 5.
    jpg, _ = _pair(scene(W, H, square=SQUARE))
    plain = engine.render(plan(*lead, op("resize", width=400)), jpg)
    sharp = engine.render(plan(*lead, op("resize", width=400, sharpen=True)), jpg)
    assert np.array_equal(decode(sharp.body), decode(plain.body))


def test_sharpen_does_nothing_when_enlarging():
    source = png(_detailed(200, 100))
    plain = engine.render(plan(op("resize", width=400)), source)
    sharp = engine.render(plan(op("resize", width=400, sharpen=True)), source)
    assert np.array_equal(decode(sharp.body), decode(plain.body))


@pytest.mark.parametrize(
    ("operations", "shrink"),
    [
        ((op("resize", width=300),), 8),  # 2400 / 300 = 8
        ((op("resize", width=700),), 2),  # 3.4
        ((op("resize", width=200, height=200, mode="fill"),), 8),  # 1600 / 200
        ((op("crop", width=1200, height=800), op("resize", width=300)), 4),
        ((op("resize", width=2000),), 1),
        ((op("blur", sigma=1), op("resize", width=300)), 1),
        ((op("crop", width=600, height=600, anchor="smart"), op("resize", width=150)), 1),
        ((op("crop", width=1200, height=800),), 1),
    ],
    ids=["8", "2", "fill", "crop-resize", "small-ratio", "blur-first", "smart", "crop-alone"],
)
def test_decoder_shrinks_as_much_as_the_leading_operations_allow(operations, shrink, monkeypatch):
    jpg, _ = _pair(_detailed(W, H))
    shrinks: list[int] = []
    load = pyvips.Image.new_from_source  # JPEGs open from memory (engine.probe)

    def spy(data, options, **kwargs):  # noqa: ANN001, ANN202
        shrinks.append(kwargs.get("shrink", 1))
        return load(data, options, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_source", staticmethod(spy))
    out = engine.render(plan(*operations), jpg)
    assert shrinks[-1] == shrink  # (the first read is the header)
    predicted = engine.output_size(plan(*operations), engine.Size(W, H))
    assert (out.width, out.height) == (predicted.width, predicted.height)


def test_svg_is_rasterised_at_the_resize_target():
    # A leading resize renders the vector at the target scale: a 1 px line at 10x is 10 px
    # of solid colour, not a blurred upscale of a 1 px raster.
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
        b'<rect width="40" height="20" fill="#fff"/>'
        b'<rect x="20" width="1" height="20" fill="#000"/>'
        b"</svg>"
    )
    out = decode(engine.render(plan(op("resize", width=400)), svg).body)
    assert out.shape[:2] == (200, 400)
    row = out[100, :, 0].astype(int)
    assert (row < 20).sum() == 10


def test_two_crops_then_resize_match_full_size_decode():
    # The second crop is placed by the subject area as the first cut moved it.
    operations = (
        op("crop", width=2000, height=1200, anchor="400_100"),
        op("crop", width=4, height=3, mode="box"),
        op("resize", width=100),
    )
    jpg, same_png = _pair(scene(W, H, square=SQUARE))
    shrunk = engine.render(plan(*operations), jpg, dynamic_metadata=SUBJECT)
    full = engine.render(plan(*operations), same_png, dynamic_metadata=SUBJECT)
    assert (shrunk.width, shrunk.height) == (full.width, full.height)
    a, b = decode(shrunk.body).astype(int), decode(full.body).astype(int)
    assert np.abs(a - b).mean() < 3.0
    assert red_centre(a) == pytest.approx(red_centre(b), abs=2.0)


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        # 2400x1600 source: the largest 1/2^n shrink that still covers the output
        ((op("resize", width=300),), 8),
        ((op("resize", width=301),), 4),  # a 2x margin would have taken 1/2 here
        ((op("resize", width=600),), 4),
        ((op("resize", width=601),), 2),
        ((op("resize", width=1201),), 1),
        ((op("resize", width=200, height=200, mode="fill"), op("crop", width=200, height=200)), 8),
        ((op("resize", width=210, height=210, mode="fill"), op("crop", width=210, height=210)), 4),
        ((op("crop", width=1200, height=800), op("resize", width=150)), 8),
    ],
)
def test_jpeg_is_decoded_at_the_largest_shrink_the_output_allows(operations, expected, monkeypatch):
    jpg, same_png = _pair(_detailed(W, H))
    shrinks: list[int] = []
    load = pyvips.Image.new_from_source  # JPEGs open from memory (engine.probe)

    def spy(data, options, **kwargs):  # noqa: ANN001, ANN202
        if kwargs.get("access") == "sequential" or "shrink" in kwargs:
            shrinks.append(kwargs.get("shrink", 1))
        return load(data, options, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_source", staticmethod(spy))
    shrunk = engine.render(plan(*operations), jpg)
    monkeypatch.undo()
    assert shrinks == [expected]
    full = engine.render(plan(*operations), same_png)
    assert (shrunk.width, shrunk.height) == (full.width, full.height)
    a, b = decode(shrunk.body).astype(int), decode(full.body).astype(int)
    assert np.abs(a - b).mean() < 6.5
