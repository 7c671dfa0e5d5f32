"""composition, pixel by pixel: canvases and letterboxes (foreground), watermarks
(background), secondary images sized by every resize mode, opacity, angle, anchors, areas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pyvips

import engine
from stacks.errors import StackError
from tests.engine.conftest import GREY, decode, op, plan, png, red_centre, red_mask, scene

GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
TOLERANCE = 3


def primary(alpha: bool = False) -> bytes:
    """A 40x30 grey image with a red 10x10 square at its top-left corner."""
    image = scene(40, 30, square=(0, 0, 10))
    return png(image.bandjoin(255) if alpha else image)


def image_of(arr: np.ndarray) -> bytes:
    return png(pyvips.Image.new_from_array(arr.astype(np.uint8), interpretation="srgb"))


def mark(width: int = 20, height: int = 10, colour: tuple[int, int, int] = BLUE) -> bytes:
    return image_of(np.tile(np.array(colour, dtype=np.uint8), (height, width, 1)))


def halves(width: int = 20, height: int = 10) -> bytes:
    """Blue left half, green right half: shows how a secondary was resized or cut."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = BLUE
    arr[:, width // 2 :] = GREEN
    return image_of(arr)


def resource(data: bytes, metadata: dict[str, Any] | None = None) -> engine.Resource:
    return engine.Resource(data, engine.inspect(data), metadata)


def render(*ops, source: bytes | None = None, secondary: engine.Resource | None = None, **kw):
    resources = {"abcdef": secondary} if secondary is not None else None
    out = engine.render(plan(*ops, **kw), source or primary(), resources=resources)
    return decode(out.body)


def colour_mask(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    diff = np.abs(pixels[..., :3].astype(int) - np.array(colour)).max(axis=-1)
    return diff <= tol


def bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive of the True pixels."""
    ys, xs = np.nonzero(mask)
    assert len(xs), "nothing found"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def grey_mask(pixels: np.ndarray) -> np.ndarray:
    return colour_mask(pixels, (GREY, GREY, GREY), 4)


def primary_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """Where the 40x30 primary sits: the grey pixels plus its red corner."""
    return bounds(grey_mask(pixels) | red_mask(pixels))


# ------------------------------------------------------------------- canvas / letterbox

ANCHORS = {
    "left_top": (0, 0),
    "center_top": (10, 0),
    "right_top": (20, 0),
    "left_center": (0, 10),
    "center_center": (10, 10),
    "right_center": (20, 10),
    "left_bottom": (0, 20),
    "center_bottom": (10, 20),
    "right_bottom": (20, 20),
    "5_7": (5, 7),
    "0-15": (0, 15),
    "1000_1000": (20, 20),  # clamped: the image stays on the canvas
}


@pytest.mark.parametrize(("anchor", "at"), ANCHORS.items())
def test_canvas_places_the_image_at_the_anchor(anchor: str, at: tuple[int, int]):
    pixels = render(op("composition", width=60, height=50, secondary_color="00FF00", anchor=anchor))
    assert pixels.shape == (50, 60, 3)  # an opaque box filling the canvas: no alpha
    x, y = at
    assert primary_box(pixels) == (x, y, x + 39, y + 29)
    assert bounds(red_mask(pixels)) == (x, y, x + 9, y + 9)
    canvas = colour_mask(pixels, GREEN, 2)
    assert canvas.sum() == 60 * 50 - 40 * 30


def test_default_canvas_colour_is_black_and_centred():
    pixels = render(op("composition", width=50, height=40))
    assert primary_box(pixels) == (5, 5, 44, 34)
    assert (pixels[0, 0] == 0).all() and (pixels[39, 49] == 0).all()


def test_letterbox_after_resize_as_rokka_documents():
    # rokka's example: a 4:3 image fitted into 160x90 with white borders.
    out = engine.render(
        plan(
            op("resize", width=160, height=90),
            op("composition", width=160, height=90, secondary_color="FFFFFF"),
        ),
        primary(),
    )
    pixels = decode(out.body)
    assert (out.width, out.height) == (160, 90)
    assert primary_box(pixels) == (20, 0, 139, 89)
    assert colour_mask(pixels[:, :20], (255, 255, 255), 2).all()


@pytest.mark.parametrize(("opacity", "alpha"), [(0, 0), (50, 128), (100, 255)])
def test_canvas_opacity_is_the_border_alpha(opacity: int, alpha: int):
    pixels = render(
        op(
            "composition",
            width=60,
            height=50,
            secondary_color="00FF00",
            secondary_opacity=opacity,
            anchor="left_top",
        )
    )
    assert pixels.shape[2] == (3 if opacity == 100 else 4)
    if opacity < 100:
        assert abs(int(pixels[40, 50, 3]) - alpha) <= 1
        assert (pixels[:30, :40, 3] == 255).all()
    if opacity > 0:
        assert colour_mask(pixels[40:, 50:], GREEN, 2).all()


def test_box_smaller_than_the_image_keeps_the_image():
    pixels = render(op("composition", width=10, height=10, secondary_color="00FF00"))
    assert pixels.shape == (30, 40, 3)
    assert primary_box(pixels) == (0, 0, 39, 29)
    assert not colour_mask(pixels, GREEN, 2).any()


def test_box_wider_but_lower_grows_one_way_and_leaves_corners_clear():
    pixels = render(
        op("composition", width=60, height=10, secondary_color="00FF00", anchor="left_top")
    )
    assert pixels.shape == (30, 60, 4)
    assert colour_mask(pixels[:10, 40:], GREEN, 2).all()
    assert (pixels[10:, 40:, 3] == 0).all()  # neither image nor box covers this


def test_canvas_size_is_dpr_scaled_after_a_resize():
    out = engine.render(
        plan(
            op("resize", width=40),
            op("composition", width=60, height=50, anchor="5_7", secondary_color="00FF00"),
            dpr=2,
        ),
        primary(),
    )
    pixels = decode(out.body)
    assert (out.width, out.height) == (120, 100)
    assert primary_box(pixels) == (10, 14, 89, 73)


def test_image_alpha_is_kept_on_the_canvas():
    arr = np.full((30, 40, 4), GREY, dtype=np.uint8)
    arr[..., 3] = 255
    arr[:, 20:, 3] = 0  # right half transparent
    source = png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    pixels = render(
        op("composition", width=40, height=30, secondary_color="00FF00"),
        source=source,
    )
    # foreground: the box shows through the image's transparent half
    assert colour_mask(pixels[:, 20:], GREEN, 2).all()
    assert colour_mask(pixels[:, :20], (GREY, GREY, GREY), 2).all()
    assert (pixels[..., 3] == 255).all()


# ------------------------------------------------------------------------- watermarks


@pytest.mark.parametrize(
    ("anchor", "at"),
    [
        ("right_bottom", (30, 20)),
        ("left_top", (0, 0)),
        ("center_center", (15, 10)),
        ("3_4", (3, 4)),
    ],
)
def test_colour_watermark_at_the_anchor(anchor: str, at: tuple[int, int]):
    pixels = render(
        op(
            "composition",
            mode="background",
            width=10,
            height=10,
            secondary_color="0000FF",
            anchor=anchor,
        )
    )
    assert pixels.shape == (30, 40, 3)
    x, y = at
    assert bounds(colour_mask(pixels, BLUE, 2)) == (x, y, x + 9, y + 9)
    assert colour_mask(pixels, BLUE, 2).sum() == 100


def test_watermark_opacity_blends_with_the_image():
    pixels = render(
        op("composition", mode="background", secondary_color="0000FF", secondary_opacity=25)
    )
    # No size: the box is the image's; a quarter of blue over the grey everywhere.
    expected = np.array([GREY * 0.75, GREY * 0.75, GREY * 0.75 + 255 * 0.25])
    assert pixels.shape == (30, 40, 3)
    assert (np.abs(pixels[20, 20].astype(float) - expected) <= TOLERANCE).all()


def test_secondary_image_keeps_its_size_without_width_and_height():
    pixels = render(
        op("composition", mode="background", secondary_image="abcdef", anchor="right_top"),
        secondary=resource(mark(20, 10)),
    )
    assert bounds(colour_mask(pixels, BLUE, 2)) == (20, 0, 39, 9)


def test_secondary_image_bigger_than_the_image_grows_the_canvas():
    pixels = render(
        op("composition", mode="background", secondary_image="abcdef", anchor="left_top"),
        secondary=resource(mark(50, 10)),
    )
    assert pixels.shape[:2] == (30, 50)
    assert bounds(colour_mask(pixels, BLUE, 2)) == (0, 0, 49, 9)
    assert (pixels[10:, 40:, 3] == 0).all()


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"width": 10}, (10, 5)),  # box: aspect kept
        ({"height": 8}, (16, 8)),
        ({"width": 10, "height": 10}, (10, 5)),
        ({"width": 10, "height": 10, "resize_mode": "absolute"}, (10, 10)),
        ({"width": 10, "height": 10, "resize_mode": "fill"}, (10, 10)),
        ({"resize_to_primary": True, "resize_mode": "absolute"}, (40, 30)),
        ({"resize_to_primary": True, "width": 4}, (40, 20)),  # wins over width
    ],
)
def test_secondary_image_is_resized_by_resize_mode(options: dict, size: tuple[int, int]):
    pixels = render(
        op(
            "composition",
            mode="background",
            secondary_image="abcdef",
            anchor="left_top",
            **options,
        ),
        secondary=resource(halves(20, 10)),
    )
    found = bounds(colour_mask(pixels, BLUE, 60) | colour_mask(pixels, GREEN, 60))
    assert found == (0, 0, size[0] - 1, size[1] - 1)


def test_fill_cuts_around_the_secondary_subject_area():
    # 20x10 halves, subject area in the green half: a 10x10 fill keeps the green side.
    area = {"subject_area": {"x": 15, "y": 0, "width": 5, "height": 10}}
    pixels = render(
        op(
            "composition",
            mode="background",
            secondary_image="abcdef",
            width=10,
            height=10,
            resize_mode="fill",
            anchor="left_top",
        ),
        secondary=resource(halves(20, 10), area),
    )
    assert colour_mask(pixels[:10, :10], GREEN, 2).all()
    # Without an area the cut is centred: half blue, half green.
    centred = render(
        op(
            "composition",
            mode="background",
            secondary_image="abcdef",
            width=10,
            height=10,
            resize_mode="fill",
            anchor="left_top",
        ),
        secondary=resource(halves(20, 10)),
    )
    assert colour_mask(centred[:10, :5], BLUE, 2).all()
    assert colour_mask(centred[:10, 5:10], GREEN, 2).all()


def test_secondary_image_transparency_shows_the_image():
    arr = np.zeros((10, 10, 4), dtype=np.uint8)
    arr[..., 2] = 255
    arr[:, :5, 3] = 255  # left half opaque blue, right half transparent
    logo = png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    pixels = render(
        op("composition", mode="background", secondary_image="abcdef", anchor="right_bottom"),
        secondary=resource(logo),
    )
    assert pixels.shape == (30, 40, 3)
    assert colour_mask(pixels[20:, 30:35], BLUE, 2).all()
    assert colour_mask(pixels[20:, 35:], (GREY, GREY, GREY), 2).all()


def test_secondary_image_opacity():
    pixels = render(
        op(
            "composition",
            mode="background",
            secondary_image="abcdef",
            secondary_opacity=50,
            anchor="left_bottom",
        ),
        secondary=resource(mark(10, 10)),
    )
    expected = np.array([GREY / 2, GREY / 2, GREY / 2 + 255 / 2])
    assert (np.abs(pixels[25, 5].astype(float) - expected) <= TOLERANCE).all()


def test_foreground_mode_puts_the_secondary_image_behind():
    pixels = render(
        op("composition", secondary_image="abcdef", anchor="left_top"),
        secondary=resource(mark(20, 10)),
    )
    # The opaque image hides the secondary entirely.
    assert not colour_mask(pixels, BLUE, 40).any()
    assert bounds(red_mask(pixels)) == (0, 0, 9, 9)


def test_angle_turns_the_secondary():
    quarter = render(
        op("composition", mode="background", secondary_image="abcdef", anchor="left_top", angle=90),
        secondary=resource(mark(20, 10)),
    )
    assert bounds(colour_mask(quarter, BLUE, 2)) == (0, 0, 9, 19)
    tilted = render(
        op(
            "composition",
            width=20,
            height=20,
            mode="background",
            secondary_color="0000FF",
            anchor="left_top",
            angle=45,
        )
    )
    # A 20x20 square turned 45 degrees: a diamond about 28 px wide, corners clear.
    blue = colour_mask(tilted, BLUE, 2)
    x0, y0, x1, y1 = bounds(blue)
    assert 25 <= x1 - x0 <= 29 and 25 <= y1 - y0 <= 29
    assert not blue[0, 0] and not blue[y1, x1] and blue[(y0 + y1) // 2, (x0 + x1) // 2]


def test_empty_primary_gives_the_secondary_alone():
    out = engine.render(
        plan(op("composition", width=30, height=12, secondary_color="00FF00", empty_primary=True)),
        primary(),
    )
    pixels = decode(out.body)
    assert (out.width, out.height) == (30, 12)
    assert colour_mask(pixels, GREEN, 2).all()


def test_cache_without_a_secondary_stack_is_refused_saying_why():
    # cache keeps a rendered secondary stack (webapp/secondarycache.py): nothing to keep
    with pytest.raises(StackError) as caught:
        op("composition", width=50, height=40, cache=True)
    assert caught.value.parameter == "cache" and "secondary_stack" in caught.value.message


def test_a_secondary_stack_rendered_before_is_used_like_the_one_rendered_in_place():
    # The secondary stack: a 30 x 12 box of halves (its own source image, "abcdef").
    sub = plan(op("resize", width=30, height=12, mode="absolute"))
    composed = op(
        "composition",
        mode="background",
        secondary_stack="box",
        secondary_image="abcdef",
        anchor="right_bottom",
        cache=True,
    )
    key = engine.secondary_render_key("box", None, "abcdef")
    mark = resource(halves())
    in_place = engine.render(
        plan(composed),
        primary(),
        resources={"abcdef": mark},
        renders={key: engine.SecondaryRender(sub, "abcdef", "box", True)},
    )
    before = engine.render(sub, halves())
    cached = engine.render(
        plan(composed),
        primary(),
        resources={"abcdef": mark, key: resource(before.body)},
    )
    assert (in_place.width, in_place.height) == (cached.width, cached.height) == (40, 30)
    pixels = decode(cached.body)
    assert np.abs(decode(in_place.body).astype(int) - pixels).max() <= 1
    assert bounds(colour_mask(pixels, BLUE)) == (10, 18, 24, 29)
    # and its decode counts in the render's budget, like a secondary image's
    cost = engine.plan_cost(
        plan(composed), engine.inspect(primary()), images={key: engine.inspect(before.body)}
    )
    assert any("cached secondary_stack box" in step.name for step in cost.steps)


# ---------------------------------------------------------------------- areas, keywords


def test_canvas_moves_the_subject_area_with_the_image():
    meta = {"subject_area": {"x": 0, "y": 0, "width": 10, "height": 10}}
    out = engine.render(
        plan(
            op("composition", width=80, height=60, anchor="right_bottom"),
            op("crop", width=10, height=10, anchor="subjectarea"),
        ),
        primary(),
        dynamic_metadata=meta,
    )
    assert red_mask(decode(out.body)).all()


def test_keyword_anchor_centres_a_watermark_on_the_subject_area():
    meta = {"subject_area": {"x": 30, "y": 20, "width": 10, "height": 10}}
    out = engine.render(
        plan(
            op(
                "composition",
                mode="background",
                width=6,
                height=6,
                secondary_color="0000FF",
                anchor="auto",
            )
        ),
        primary(),
        dynamic_metadata=meta,
    )
    assert bounds(colour_mask(decode(out.body), BLUE, 2)) == (32, 22, 37, 27)


def test_keyword_anchor_without_area_is_centred():
    pixels = render(
        op(
            "composition",
            mode="background",
            width=6,
            height=6,
            secondary_color="0000FF",
            anchor="subjectarea",
        )
    )
    assert bounds(colour_mask(pixels, BLUE, 2)) == (17, 12, 22, 17)


def test_watermark_on_every_frame_of_an_animation():
    frames = [scene(20, 10, square=(i * 5, 0, 5)) for i in range(3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 10)
    gif = bytes(strip.gifsave_buffer())
    out = engine.render(
        plan(
            op("composition", mode="background", secondary_image="abcdef", anchor="left_top"),
            fmt="gif",
        ),
        gif,
        resources={"abcdef": resource(mark(4, 4))},
    )
    pixels = pyvips.Image.new_from_buffer(out.body, "", n=-1).numpy()
    assert pixels.shape[0] == 30
    for i in range(3):
        frame = pixels[i * 10 : (i + 1) * 10]
        assert colour_mask(frame[:4, :4], BLUE, 40).all(), i
        assert red_centre(frame)[0] > 4 or i == 0


def test_missing_resource_is_a_render_error():
    with pytest.raises(engine.EngineError, match="secondary_image abcdef"):
        engine.render(plan(op("composition", secondary_image="abcdef")), primary())


def test_secondary_decode_counts_in_the_pixel_budget():
    big = resource(mark(300, 300))
    with pytest.raises(engine.OverBudget, match="composition secondary_image abcdef"):
        engine.render(
            plan(op("composition", secondary_image="abcdef", width=10)),
            primary(),
            resources={"abcdef": big},
            budget=engine.Budget(max_pixels=50_000),
        )


def test_secondary_image_from_a_whole_image_decoder():
    # JPEG XL comes through engine/foreign.py, not libvips: it is decoded, then resized.
    from engine import foreign

    blue = pyvips.Image.new_from_array(
        np.tile(np.array(BLUE, dtype=np.uint8), (10, 20, 1)), interpretation="srgb"
    )
    data = foreign.encode(blue, "jxl", 100)
    assert engine.inspect(data).format == "jxl"
    pixels = render(
        op("composition", mode="background", secondary_image="abcdef", anchor="left_top", width=10),
        secondary=resource(data),
    )
    assert bounds(colour_mask(pixels, BLUE, 2)) == (0, 0, 9, 4)
