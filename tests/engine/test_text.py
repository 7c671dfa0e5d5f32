"""The ``text`` operation, pixel by pixel, with block fonts whose glyphs are filled
rectangles (tests/fontfiles.py): at size ``s`` every character is ``0.6 s`` wide and ``s``
tall, so positions, wrapping, alignment, anchors, colours and opacity are exact."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.operations import text as text_op
from tests.engine.conftest import GREY, decode, op, plan, png, scene
from tests.fontfiles import block_otf, block_ttf, line_width

FONT = "f0e1d2c3b4a5"
FONTS = {FONT: engine.Resource(block_ttf())}


def render(
    *ops,
    source: bytes | None = None,
    resources: dict[str, engine.Resource] | None = None,
    **options,
):
    body = source or png(scene(200, 100))
    out = engine.render(
        plan(*ops, **options), body, resources=FONTS if resources is None else resources
    )
    return decode(out.body)


def text(**options) -> object:
    options.setdefault("font", FONT)
    options.setdefault("text", "XX")
    options.setdefault("size", 20)
    return op("text", **options)


def ink(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), inclusive, of the pixels that are not the grey scene."""
    changed = np.any(pixels[..., :3] != GREY, axis=-1)
    ys, xs = np.nonzero(changed)
    assert len(xs), "no text was drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def rows_with_ink(pixels: np.ndarray, column_from: int = 0) -> list[tuple[int, int]]:
    """(first, last) x of the ink of each pixel row that has ink."""
    out = []
    for row in pixels[..., 0]:
        xs = np.nonzero(row != GREY)[0]
        if len(xs):
            out.append((int(xs.min()), int(xs.max())))
    return out


def test_default_is_black_text_of_16_pixels_centred():
    pixels = render(op("text", font=FONT, text="XXXXX"))
    left, top, right, bottom = ink(pixels)
    # 16 px tall; 5 x 9.6 px wide (Pango puts each glyph on a whole pixel: within 2 px)
    assert (top, bottom) == (42, 57)
    assert abs((right - left + 1) - line_width("XXXXX", 16)) <= 2
    assert abs((left + right + 1) / 2 - 100) <= 1
    assert tuple(pixels[50, left + 4]) == (0, 0, 0)  # black, opaque
    assert pixels.shape == (100, 200, 3)  # the image keeps its size and bands


@pytest.mark.parametrize(
    ("anchor", "corner"),
    [
        ("left_top", (0, 0)),
        ("right_bottom", (200 - 24, 100 - 20)),
        ("center_top", (88, 0)),
        ("left_center", (0, 40)),
        ("right_center", (176, 40)),
        ("center_bottom", (88, 80)),
        ("10_20", (10, 20)),
        ("150-5", (150, 5)),
    ],
)
def test_anchor_places_the_text(anchor: str, corner: tuple[int, int]):
    x, y = corner
    assert ink(render(text(anchor=anchor))) == (x, y, x + 23, y + 19)


def test_pixel_anchor_past_the_edge_cuts_the_text_off():
    # 24 x 20 text with its corner at 190_90 shows 10 x 10 pixels; the image stays 200 x 100
    pixels = render(text(anchor="190_90"))
    assert pixels.shape[:2] == (100, 200)
    assert ink(pixels) == (190, 90, 199, 99)


def test_size_is_the_height_of_a_line_in_pixels():
    for size in (10, 30, 45):
        left, top, right, bottom = ink(render(text(size=size, anchor="0_0")))
        assert (right + 1, bottom + 1) == (round(line_width("XX", size)), size)


def test_color_and_opacity_are_painted_over_the_image():
    pixels = render(text(color="FF0000", opacity=100, anchor="0_0"))
    assert tuple(pixels[5, 5]) == (255, 0, 0)
    half = render(text(color="00FF00", opacity=50, anchor="0_0"))
    # 50 % green over grey 128: 128/2 and (255 + 128)/2, within rounding
    assert np.allclose(half[5, 5], (64, 191, 64), atol=2)
    assert tuple(render(text(opacity=0, anchor="0_0"))[5, 5]) == (GREY, GREY, GREY)


def test_width_wraps_lines_and_align_places_each_line_in_it():
    # "XXXX XX" at 20 px: "XXXX" is 48 px, "XX" 24 px; 60 px wide lines wrap after XXXX
    expected = {"left": (0, 23), "centre": (18, 41), "right": (36, 59)}
    first_line = {"left": (0, 47), "centre": (6, 53), "right": (12, 59)}
    for align, second in expected.items():
        pixels = render(text(text="XXXX XX", width=60, align=align, anchor="0_0"))
        rows = rows_with_ink(pixels)
        assert len(rows) == 40  # two lines of 20 px
        assert rows[0] == first_line[align] and rows[-1] == second


def test_width_is_the_block_that_anchors_place():
    # a 100 px box holding a left-aligned 24 px line, anchored right: the line ends 76 px
    # before the image's right edge, the box's right edge is the image's
    assert ink(render(text(width=100, anchor="right_top")))[:3] == (100, 0, 123)


def test_a_word_longer_than_the_width_is_broken_inside_the_width():
    rows = rows_with_ink(render(text(text="XXXXXXXX", width=50, anchor="0_0")))
    assert max(right for _, right in rows) < 50
    assert len(rows) > 20  # more than one line


def test_spacing_adds_pixels_between_lines():
    pixels = render(text(text="XX XX", width=30, spacing=7, anchor="0_0"))
    ink_rows = np.nonzero((pixels[..., 0] != GREY).any(axis=1))[0]
    assert list(ink_rows) == list(range(0, 20)) + list(range(27, 47))


def test_height_centres_the_text_vertically_in_the_box():
    # one 20 px line in a 60 px tall box at 0_0: the text starts 20 px down
    assert ink(render(text(height=60, anchor="0_0"))) == (0, 20, 23, 39)
    # the box, not the text, is what center_center centres
    assert ink(render(text(height=60))) == (88, 40, 111, 59)


def test_height_cuts_off_what_does_not_fit():
    # two lines (40 px) in a 30 px box: the first line and half of the second remain
    pixels = render(text(text="XX XX", width=30, height=30, anchor="0_0"))
    assert ink(pixels) == (0, 0, 23, 29)


def test_resize_to_box_chooses_the_size_that_fills_the_box():
    box = {"width": 120, "height": 60, "anchor": "0_0", "resize_to_box": True}
    short = ink(render(text(text="XX", **box)))
    long = ink(render(text(text="XXXXXXXX XXXXXXXX", **box)))
    for _, _, right, bottom in (short, long):
        assert right < 120 and bottom < 60  # always inside the box
    # the short text fills the box's height (bigger than its 20 px size), the long one
    # its width, with smaller letters
    assert short[3] - short[1] + 1 >= 55
    assert long[2] - long[0] + 1 >= 110
    assert rows_with_ink(render(text(text="XX", **box)))[0][1] > 24


def test_resize_to_box_needs_width_and_height():
    assert ink(render(text(resize_to_box=True, width=150, anchor="0_0"))) == (0, 0, 23, 19)


def test_angle_turns_the_text_clockwise():
    # a quarter turn: 24 x 20 becomes 20 x 24
    assert ink(render(text(angle=90, anchor="0_0"))) == (0, 0, 19, 23)
    # 45 degrees: the ink's bounding box is the rotated rectangle's, (24 + 20) / sqrt 2
    left, top, right, bottom = ink(render(text(angle=45, anchor="0_0")))
    assert abs((right - left + 1) - 31.1) <= 2 and abs((bottom - top + 1) - 31.1) <= 2


def test_a_negative_angle_turns_counter_clockwise():
    # "X XXX" in a 40 px wide block: line 1 "X" (12 x 20) above line 2 "XXX" (36 x 20).
    # Turned counter-clockwise the text runs upwards: line 1 becomes the left column,
    # at the bottom; clockwise it would be the right column, at the top.
    pixels = render(text(text="X XXX", width=40, angle=-90, anchor="0_0"))
    assert ink(pixels) == (0, 4, 39, 39)
    assert pixels[35, 5, 0] == 0 and pixels[5, 5, 0] == GREY and pixels[30, 30, 0] == 0
    # clockwise, line 1 is the top of the right column, and line 2 the left column
    clockwise = render(text(text="X XXX", width=40, angle=90, anchor="0_0"))
    assert ink(clockwise) == (0, 0, 39, 35)
    assert clockwise[5, 5, 0] == 0 and clockwise[30, 30, 0] == GREY


def test_markup_in_the_text_is_written_literally():
    # libvips reads Pango markup; a user must not pick fonts or sizes through it
    words = "<span size='90000'>X</span>"
    left, top, right, bottom = ink(render(text(text=words, size=10, anchor="0_0")))
    assert (right + 1, bottom + 1) == (round(line_width(words, 10)), 10)
    ink(render(text(text="a & b < c", size=10)))  # no markup error either


def test_area_anchors_centre_the_text_on_the_area():
    subject = {"subject_area": {"x": 10, "y": 10, "width": 40, "height": 40}}
    out = engine.render(
        plan(text(anchor="subjectarea")),
        png(scene(200, 100)),
        dynamic_metadata=subject,
        resources=FONTS,
    )
    assert ink(decode(out.body)) == (18, 20, 41, 39)  # centred on (30, 30)
    # auto uses the subject area too, and centres on the image without one
    assert ink(render(text(anchor="auto"))) == (88, 40, 111, 59)
    assert ink(render(text(anchor="face"))) == (88, 40, 111, 59)


def test_after_a_resize_pixel_options_follow_the_dpr():
    pixels = render(op("resize", width=100), text(anchor="5_5"), dpr=2)
    assert pixels.shape[:2] == (100, 200)
    assert ink(pixels) == (10, 10, 10 + 47, 10 + 39)  # size 40, anchor 10_10


def test_alpha_is_kept_and_text_is_opaque_on_transparent_pixels():
    transparent = png(scene(200, 100).bandjoin(0))
    out = decode(engine.render(plan(text(anchor="0_0")), transparent, resources=FONTS).body)
    assert out.shape == (100, 200, 4)
    assert tuple(out[5, 5]) == (0, 0, 0, 255) and out[50, 150, 3] == 0


def test_an_opentype_cff_font_renders():
    # CFF outlines are antialiased at the bottom edge; the box is still 24 x 20 within 1 px
    pixels = render(text(anchor="0_0"), resources={FONT: engine.Resource(block_otf())})
    left, top, right, bottom = ink(pixels)
    assert (left, top) == (0, 0) and abs(right - 23) <= 1 and abs(bottom - 19) <= 1


def test_fonts_with_the_same_family_name_are_never_confused():
    # Two uploads both calling themselves "Blocks" with different glyph widths: libvips
    # registers fonts process-wide, so each must still render with its own outlines.
    narrow = {FONT: engine.Resource(block_ttf("Blocks", block=300))}
    wide = {FONT: engine.Resource(block_ttf("Blocks", block=600))}
    for fonts, width in ((narrow, 12), (wide, 24), (narrow, 12)):
        assert ink(render(text(anchor="0_0"), resources=fonts))[2] + 1 == width


def test_a_font_the_render_was_not_given_is_a_4xx():
    with pytest.raises(engine.EngineError) as caught:
        render(text(), resources={})
    assert 400 <= caught.value.status < 500


def test_bytes_that_are_no_font_are_a_4xx():
    for bad in (png(scene(20, 20)), b"OTTO" + b"\0" * 40, block_ttf()[:200]):
        with pytest.raises(engine.EngineError) as caught:
            render(text(), resources={FONT: engine.Resource(bad)})
        assert 400 <= caught.value.status < 500


def test_blank_text_leaves_the_image_alone():
    assert (render(text(text="   ")) == GREY).all()


def test_the_font_file_is_removed_after_the_render():
    import os

    from engine import fonts

    render(text())
    assert fonts._directory is not None and os.listdir(fonts._directory) == []


def test_large_text_is_refused_by_the_work_budget_before_rendering():
    huge = text(text="X" * 1000, size=1000)
    with pytest.raises(engine.OverBudget):
        render(huge)
    assert text_op.mask_pixels(huge.options) == 1000 * 1000**2


def test_every_frame_of_an_animation_gets_the_text():
    import pyvips

    # frames differ (a red square moves at the right) so the encoder keeps all three
    frames = [scene(60, 40, square=(36 + 6 * i, 28, 6)) for i in range(3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    gif = bytes(strip.gifsave_buffer())
    out = engine.render(plan(text(anchor="5_5"), fmt="gif"), gif, resources=FONTS)
    decoded = pyvips.Image.new_from_buffer(out.body, "", n=-1).numpy()
    assert decoded.shape[:2] == (120, 60)
    for i in range(3):
        frame = decoded[i * 40 : (i + 1) * 40]
        assert ink(frame[:, :34]) == (5, 5, 28, 24)


def test_missing_characters_are_never_drawn_from_another_uploaded_font():
    import io

    from fontTools.ttLib import TTFont

    from engine.fonts import installed_font

    # Font A maps U+E000 (private use: no system font has it) to a 1.5 em wide block.
    font = TTFont(io.BytesIO(block_ttf("A", block=1500)))
    for table in font["cmap"].tables:
        table.cmap[0xE000] = "g58"
    out = io.BytesIO()
    font.save(out)
    other = engine.Resource(out.getvalue())
    assert ink(render(text(text="\ue000", anchor="0_0"), resources={FONT: other}))[2] == 29
    # Font B lacks U+E000. While A's file exists (as during another organization's
    # render), B's text must not borrow A's glyph: Pango's missing-glyph box instead.
    with installed_font(other.data):
        left, _, right, _ = ink(render(text(text="\ue000", anchor="0_0")))
    assert right - left + 1 < 25
