"""Pixel tests of engine.render on synthetic images: decode outputs, compare with tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

import engine
from stacks.plan import Operation
from tests.engine.conftest import (
    GREY,
    decode,
    jpeg,
    op,
    plan,
    png,
    red_centre,
    red_mask,
    scene,
)

SQUARE = (300, 40, 40)  # x, y, side: off-centre, centre at (320, 60)
SUBJECT = {"subject_area": {"x": 300, "y": 40, "width": 40, "height": 40}}


@pytest.fixture(scope="module")
def source() -> bytes:
    return png(scene(square=SQUARE))


def crop(**o):
    return op("crop", **{"width": 100, "height": 100, **o})


def render(p, src, meta=None):
    return engine.render(p, src, dynamic_metadata=meta)


def test_auto_crop_centres_subject_area(source: bytes):
    out = render(plan(crop()), source, SUBJECT)
    assert (out.width, out.height) == (100, 100)
    assert red_centre(decode(out.body)) == pytest.approx((49.5, 49.5), abs=1)


def test_crop_area_is_cut_exactly(source: bytes):
    meta = {"crop_area": {"x": 280, "y": 30, "width": 80, "height": 50}}
    out = render(plan(crop()), source, meta)
    assert (out.width, out.height) == (80, 50)
    pixels = decode(out.body)
    # the square starts 20 px right of and 10 px below the area's corner
    assert red_mask(pixels)[10:50, 20:60].all()
    assert not red_mask(pixels)[:10].any() and not red_mask(pixels)[:, :20].any()


def test_centred_crop_without_areas_excludes_square(source: bytes):
    out = render(plan(crop()), source)
    assert not red_mask(decode(out.body)).any()


@pytest.mark.parametrize(
    ("options", "meta", "expected_centre"),
    [
        ({"anchor": "subjectarea"}, SUBJECT, (49.5, 49.5)),
        (
            {"anchor": "croparea"},
            {"crop_area": {"x": 270, "y": 10, "width": 100, "height": 100}},
            (49.5, 49.5),
        ),
        (
            {"anchor": "face"},
            {"detection_face": {"x": 300, "y": 40, "width": 40, "height": 40}},
            (49.5, 49.5),
        ),
        (
            {"anchor": "auto"},
            {"detection_face": {"x": 300, "y": 40, "width": 40, "height": 40}},
            (49.5, 49.5),
        ),
        ({"anchor": "300_40"}, None, (19.5, 19.5)),
        ({"anchor": "right_top"}, None, (19.5 + 300 - 300, 59.5)),
        ({"anchor": "subjectarea", "fallback": "right_top"}, None, (19.5, 59.5)),
        ({"movearea_x": 50}, SUBJECT, (29.5, 49.5)),
    ],
)
def test_anchors(source: bytes, options: dict, meta: dict | None, expected_centre):
    out = render(plan(crop(**options)), source, meta)
    assert red_centre(decode(out.body)) == pytest.approx(expected_centre, abs=1)


def test_smart_anchor_finds_square_on_flat_background():
    src = png(scene(square=(40, 200, 40)))
    out = render(plan(crop(anchor="smart")), src)
    assert (out.width, out.height) == (100, 100)
    assert red_mask(decode(out.body)).sum() == 40 * 40  # the whole square is inside


@pytest.mark.parametrize(
    ("options", "meta", "size"),
    [
        ({"mode": "ratio", "width": 16, "height": 9}, None, (400, 225)),
        ({"mode": "ratio", "width": 1, "height": 1, "scale": 50}, None, (150, 150)),
        ({"mode": "box"}, SUBJECT, (40, 40)),
        ({"mode": "area", "width": 2, "height": 1}, SUBJECT, (80, 40)),
        ({"mode": "absolute", "width": 800, "height": 400}, None, (400, 200)),
        ({"scale": 50}, SUBJECT, (50, 50)),
    ],
)
def test_modes_and_scale(source: bytes, options: dict, meta, size):
    out = render(plan(crop(**options)), source, meta)
    assert (out.width, out.height) == size
    if meta:  # every box around the subject area contains (part of) the square
        red_centre(decode(out.body))


def test_box_mode_is_the_square(source: bytes):
    out = render(plan(crop(mode="box")), source, SUBJECT)
    assert red_mask(decode(out.body)).mean() > 0.95


def test_percentage_subject_area(source: bytes):
    meta = {"subject_area": {"x": 75, "y": 13.33, "width": 10, "height": 13.33, "percentage": True}}
    out = render(plan(crop()), source, meta)
    assert red_centre(decode(out.body)) == pytest.approx((49.5, 49.5), abs=1.5)


@pytest.mark.parametrize("present", [True, False])
def test_multi_area_seed_example(present: bool):
    src = png(scene(3000 // 5, 2000 // 5, square=(100, 80, 320)))
    meta = (
        {
            "multi_areas": {
                "landscape_16_9": {"crop_area": {"width": 320, "height": 180, "x": 100, "y": 80}}
            }
        }
        if present
        else {}
    )
    p = plan(crop(width=16, height=9, mode="ratio", area="landscape_16_9"))
    out = render(p, src, meta)
    if present:
        assert (out.width, out.height) == (320, 180)
        assert red_mask(decode(out.body)).all()
    else:
        assert (out.width, out.height) == (600, 338)


def _stored_for(display: pyvips.Image, orientation: int) -> pyvips.Image:
    """Pixels that, tagged with ``orientation``, display as ``display``."""
    inverse = {
        1: lambda i: i,
        2: lambda i: i.fliphor(),
        3: lambda i: i.rot180(),
        4: lambda i: i.flipver(),
        5: lambda i: i.fliphor().rot270(),
        6: lambda i: i.rot270(),
        7: lambda i: i.fliphor().rot90(),
        8: lambda i: i.rot90(),
    }
    stored = inverse[orientation](display).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return stored


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_keeps_subject_centred(orientation: int):
    src = jpeg(_stored_for(scene(square=SQUARE), orientation))
    info = engine.probe(src)
    assert (info.width, info.height, info.orientation) == (400, 300, orientation)
    for p in (plan(crop()), plan(op("resize", width=200), crop(width=50, height=50))):
        out = engine.render(p, src, dynamic_metadata=SUBJECT, info=info)
        w = out.width
        assert red_centre(decode(out.body)) == pytest.approx(((w - 1) / 2, (w - 1) / 2), abs=1.5)


def test_resize_before_crop_carries_area(source: bytes):
    out = render(
        plan(op("resize", width=200, height=200, mode="fill"), crop(width=60, height=60)),
        source,
        SUBJECT,
    )
    assert (out.width, out.height) == (60, 60)
    assert red_centre(decode(out.body)) == pytest.approx((29.5, 29.5), abs=1.5)


def test_rotate_90_before_crop_carries_area(source: bytes):
    out = render(plan(op("rotate", angle=90), crop()), source, SUBJECT)
    assert red_centre(decode(out.body)) == pytest.approx((49.5, 49.5), abs=1)


def test_rotate_arbitrary_angle_carries_area(source: bytes):
    out = render(plan(op("rotate", angle=30, background_opacity=100), crop()), source, SUBJECT)
    assert red_centre(decode(out.body)) == pytest.approx((49.5, 49.5), abs=2)


def test_trim_then_crop_carries_area():
    src = png(scene(square=SQUARE).embed(50, 50, 500, 400, extend="white"))
    meta = {"subject_area": {"x": 350, "y": 90, "width": 40, "height": 40}}
    out = render(plan(op("trim"), crop()), src, meta)
    assert red_centre(decode(out.body)) == pytest.approx((49.5, 49.5), abs=1)


def test_dpr_scales_resize_and_later_crop(source: bytes):
    p = plan(op("resize", width=200, height=200, mode="fill"), crop(width=60, height=60), dpr=2)
    out = render(p, source, SUBJECT)
    assert (out.width, out.height) == (120, 120)
    assert red_centre(decode(out.body)) == pytest.approx((59.5, 59.5), abs=1.5)


def test_output_too_large_is_refused_before_rendering(source: bytes):
    p = plan(op("resize", width=10000, height=10000), dpr=10)
    with pytest.raises(engine.OverBudget) as err:
        render(p, source)
    assert err.value.status == 400


def test_disabled_operations_are_skipped(source: bytes):
    disabled = Operation("resize", {**op("resize", width=50).options}, enabled=False)
    out = render(plan(disabled), source)
    assert (out.width, out.height) == (400, 300)


@pytest.mark.parametrize(
    ("operation", "check"),
    [
        (op("grayscale"), lambda px: np.ptp(px[60, 320]) == 0 and px[60, 320, 0] < 200),
        (op("blur", sigma=5), lambda px: 0 < px[60, 300, 1] < GREY),
        (op("multiply", factor=0.5), lambda px: abs(int(px[0, 0, 0]) - GREY // 2) <= 1),
        (op("multiply", factor_color="FF0000"), lambda px: px[0, 0, 1] == 0),
        (op("modulate", brightness=200), lambda px: px[0, 0, 0] > GREY + 40),
        (op("sepia"), lambda px: px[0, 0, 0] > px[0, 0, 2]),
        (op("sharpen"), lambda px: px.shape[:2] == (300, 400)),
        (op("noop"), lambda px: (px[0, 0] == GREY).all()),
    ],
)
def test_colour_and_filter_ops(source: bytes, operation, check):
    assert check(decode(render(plan(operation), source).body))


def test_circlemask_makes_corners_transparent(source: bytes):
    px = decode(render(plan(op("circlemask")), source).body)
    assert px.shape[2] == 4 and px[0, 0, 3] == 0 and px[150, 200, 3] == 255


@pytest.mark.parametrize(
    ("mode", "bands"), [("mask", 3), ("extract", 4), ("remove", 3), ("apply", 4)]
)
def test_alpha_modes(source: bytes, mode: str, bands: int):
    # Truecolour PNG: a quantised (palette) PNG drops an alpha band that is opaque everywhere.
    lossless = {"pngquant.quality": 100}
    px = decode(render(plan(op("alpha", mode=mode), **lossless), source).body)
    assert px.shape[2] == bands
    if mode == "apply":
        assert px[0, 0, 3] == 127


def test_autorotate_to_box_turns_landscape(source: bytes):
    out = render(plan(op("autorotate", width=100, height=200)), source)
    assert (out.width, out.height) == (300, 400)


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("jpg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("gif", "image/gif"),
        ("avif", "image/avif"),
        ("tiff", "image/tiff"),
    ],
)
def test_output_formats(source: bytes, fmt: str, mime: str):
    out = render(plan(op("resize", width=200), crop(width=50, height=50), fmt=fmt), source, SUBJECT)
    assert out.mimetype == mime and out.ext == fmt
    decoded = pyvips.Image.new_from_buffer(out.body, "")
    assert (decoded.width, decoded.height) == (50, 50)
    assert decoded.format == "uchar"
    assert red_centre(decoded.numpy()[..., :3]) == pytest.approx((24.5, 24.5), abs=1.5)


@pytest.mark.parametrize(("fmt", "mime"), [("heic", "image/heic"), ("jxl", "image/jxl")])
def test_heic_and_jxl_outputs_decode_back(source: bytes, fmt: str, mime: str):
    """Encoded by engine/foreign.py (pillow-heif, pillow-jxl), decoded by the same codecs
    and compared with the lossless PNG of the same plan."""
    import io

    import numpy as np
    import pillow_heif
    import pillow_jxl  # noqa: F401
    from PIL import Image

    pillow_heif.register_heif_opener()
    quality = {"heif.quality" if fmt == "heic" else "jxl.quality": 90}
    out = render(plan(op("resize", width=50), fmt=fmt, **quality), source)
    reference = decode(render(plan(op("resize", width=50), fmt="png"), source).body)
    assert out.mimetype == mime and (out.width, out.height) == (50, reference.shape[0])
    decoded = np.asarray(Image.open(io.BytesIO(out.body)).convert("RGB")).astype(int)
    assert decoded.shape == reference[..., :3].shape
    assert np.abs(decoded - reference[..., :3].astype(int)).mean() < 6


def test_transparent_png_to_jpg_is_flattened_with_colour():
    rgba = scene(50, 50).bandjoin(0)  # fully transparent
    out = engine.render(plan(fmt="jpg", **{"jpg.transparency.color": "00FF00"}), png(rgba))
    px = decode(out.body)
    assert px.shape[2] == 3 and px[25, 25, 1] > 240 and px[25, 25, 0] < 20


def _animated_gif(frames: int = 4) -> bytes:
    pages = [scene(60, 40, square=(10 + i * 10, 15, 10)) for i in range(frames)]
    strip = pyvips.Image.arrayjoin(pages, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [70] * frames)
    return bytes(strip.gifsave_buffer())


@pytest.mark.parametrize("fmt", ["gif", "webp"])
@pytest.mark.parametrize("leading_resize", [True, False])
def test_animation_keeps_frames_and_delays(fmt: str, leading_resize: bool):
    ops = [op("resize", width=30)] if leading_resize else []
    out = engine.render(plan(*ops, crop(width=20, height=20), fmt=fmt), _animated_gif())
    decoded = pyvips.Image.new_from_buffer(out.body, "", n=-1)
    assert decoded.get("n-pages") == 4
    assert (decoded.width, decoded.height) == (20, 80)
    assert list(decoded.get("delay")) == [70] * 4


def test_animation_to_still_format_uses_first_frame():
    out = engine.render(plan(fmt="png"), _animated_gif())
    px = decode(out.body)
    assert px.shape[:2] == (40, 60)
    assert red_centre(px) == pytest.approx((14.5, 19.5), abs=0.5)


def test_cmyk_jpeg_becomes_srgb():
    cmyk = scene(square=SQUARE).colourspace("cmyk")
    src = bytes(cmyk.jpegsave_buffer())
    assert pyvips.Image.new_from_buffer(src, "").bands == 4
    for p in (plan(fmt="jpg"), plan(op("resize", width=200), fmt="jpg")):
        decoded = pyvips.Image.new_from_buffer(engine.render(p, src).body, "")
        assert decoded.bands == 3 and decoded.interpretation == "srgb"
        red_centre(decoded.numpy())


def test_16_bit_png_becomes_8_bit():
    wide = (scene(square=SQUARE).cast("ushort") * 257).copy(interpretation="rgb16")
    src = bytes(wide.pngsave_buffer(bitdepth=16))
    assert pyvips.Image.new_from_buffer(src, "").format == "ushort"
    decoded = pyvips.Image.new_from_buffer(engine.render(plan(), src).body, "")
    assert decoded.format == "uchar" and decoded.bands == 3
    assert red_centre(decoded.numpy()) == pytest.approx((319.5, 59.5), abs=0.5)


def test_svg_source_renders():
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">'
        b'<rect x="0" y="0" width="50" height="50" fill="red"/></svg>'
    )
    out = engine.render(plan(op("resize", width=200), fmt="png"), svg)
    px = decode(out.body)
    assert (out.width, out.height) == (200, 100)
    assert red_mask(px[..., :3])[:, :95].all()


@pytest.mark.parametrize(
    "ops",
    [
        (op("resize", width=123),),
        (op("resize", width=200, height=200, mode="fill"), crop(width=90, height=70)),
        (op("resize", width=50, height=90, mode="absolute"),),
        (op("rotate", angle=33), crop(width=16, height=9, mode="ratio")),
        (op("autorotate", width=1, height=2), op("resize", height=150, upscale=False)),
        (crop(width=3, height=1, mode="ratio", scale=40), op("rotate", angle=270)),
    ],
)
def test_output_size_predicts_rendered_size(source: bytes, ops):
    p = plan(*ops, dpr=1.5)
    predicted = engine.output_size(p, engine.Size(400, 300))
    out = render(p, source)
    assert (out.width, out.height) == (predicted.width, predicted.height)


@pytest.mark.parametrize(("mode", "progressive"), [("none", False), ("plane", True)])
def test_interlacing_mode_makes_progressive_jpeg(source: bytes, mode: str, progressive: bool):
    body = render(plan(fmt="jpg", **{"interlacing.mode": mode}), source).body
    # SOF2 (0xFFC2) marks a progressive JPEG, SOF0/SOF1 a baseline one.
    assert (b"\xff\xc2" in body) is progressive
