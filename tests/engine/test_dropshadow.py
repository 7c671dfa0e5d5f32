"""dropshadow, pixel by pixel: offsets, colour, opacity, blur (sigma, blur_radius), shapes
with alpha, the grown canvas and the areas moving with the image."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

import engine
from tests.engine.conftest import GREY, decode, op, plan, png, red_mask, scene


def primary() -> bytes:
    """A 40x30 opaque grey image with a red 10x10 square at its top-left corner."""
    return png(scene(40, 30, square=(0, 0, 10)))


def render(*ops, source: bytes | None = None, **kw) -> np.ndarray:
    out = engine.render(plan(*ops, **kw), source or primary())
    return decode(out.body)


def image_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the grey-and-red image on the canvas (opaque pixels of it)."""
    colour = pixels[..., :3].astype(int)
    grey = (np.abs(colour - GREY).max(axis=-1) <= 2) & (pixels[..., 3] == 255)
    ys, xs = np.nonzero(grey | red_mask(pixels))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def alpha_box(pixels: np.ndarray, low: int = 0) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(pixels[..., 3] > low)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize(
    ("h", "v", "canvas", "at", "shadow_only"),
    [
        (5, 5, (45, 35), (0, 0), (44, 34)),
        (-7, 12, (47, 42), (7, 0), (0, 41)),
        (0, -3, (40, 33), (0, 3), (10, 0)),
        (100, 0, (140, 30), (0, 0), (139, 15)),
    ],
)
def test_offset_grows_the_canvas_and_places_the_shadow(h, v, canvas, at, shadow_only):
    pixels = render(op("dropshadow", horizontal=h, vertical=v, sigma=0, color="0000FF"))
    assert (pixels.shape[1], pixels.shape[0]) == canvas
    x, y = at
    assert image_box(pixels) == (x, y, x + 39, y + 29)
    # The shadow is the image's rectangle moved by (h, v): opaque blue where it shows.
    sx, sy = x + h, y + v
    assert alpha_box(pixels) == (min(x, sx), min(y, sy), max(x, sx) + 39, max(y, sy) + 29)
    px, py = shadow_only
    assert tuple(pixels[py, px]) == (0, 0, 255, 255)


def test_default_colour_is_black_and_opacity_scales_alpha():
    pixels = render(op("dropshadow", horizontal=10, vertical=10, sigma=0, opacity=40))
    shadow = pixels[35, 45]
    assert tuple(shadow[:3]) == (0, 0, 0)
    assert abs(int(shadow[3]) - 102) <= 1
    # where nothing is, the canvas is clear
    assert pixels[35, 5, 3] == 0 and pixels[5, 45, 3] == 0


def test_zero_opacity_leaves_only_the_grown_canvas():
    pixels = render(op("dropshadow", horizontal=6, vertical=6, sigma=0, opacity=0))
    assert pixels.shape[:2] == (36, 46)
    assert (pixels[30:, :, 3] == 0).all() and (pixels[:, 40:, 3] == 0).all()


def test_colour_is_used():
    pixels = render(op("dropshadow", horizontal=4, vertical=0, sigma=0, color="FF8000"))
    assert tuple(pixels[15, 42]) == (255, 128, 0, 255)


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_sigma_blurs_and_grows_the_canvas_by_three_sigma(sigma: float):
    pixels = render(op("dropshadow", sigma=sigma))
    margin = int(np.ceil(3 * sigma))
    assert pixels.shape[:2] == (30 + 2 * margin, 40 + 2 * margin)
    assert image_box(pixels) == (margin, margin, margin + 39, margin + 29)
    # Leftwards from the image's edge the shadow fades: half at the edge, less further out.
    row = pixels[15 + margin, :margin, 3].astype(int)
    assert (np.diff(row) >= 0).all() and row[-1] > row[0]
    # (next to the edge the Gaussian has 31 % (sigma 1) to 42 % (sigma 2.5) of the shape)
    assert 60 <= row[-1] <= 128 and row[0] < 40


def test_sharp_shadow_without_sigma():
    pixels = render(op("dropshadow", horizontal=3, vertical=0, sigma=0))
    assert pixels.shape[:2] == (30, 43)
    assert set(np.unique(pixels[:, 40:, 3])) == {255}


def test_blur_radius_sets_the_margin():
    pixels = render(op("dropshadow", sigma=2, blur_radius=2))
    assert pixels.shape[:2] == (34, 44)
    assert image_box(pixels) == (2, 2, 41, 31)
    assert 0 < pixels[15, 0, 3] < 255


def test_shadow_follows_the_alpha_shape():
    circle = engine.render(plan(op("circlemask")), png(scene(40, 40))).body
    pixels = render(op("dropshadow", horizontal=10, vertical=10, sigma=0), source=circle)
    assert pixels.shape[:2] == (50, 50)
    # The circle's shadow: the bottom-right corner of the canvas stays clear, its centre dark.
    assert pixels[49, 49, 3] == 0
    assert tuple(pixels[45, 30]) == (0, 0, 0, 255)
    # The image's own transparent corner shows the shadow's clear corner too.
    assert pixels[0, 0, 3] == 0


def test_dpr_scales_offsets_after_a_resize():
    out = engine.render(
        plan(op("resize", width=40), op("dropshadow", horizontal=5, vertical=5, sigma=0), dpr=2),
        primary(),
    )
    assert (out.width, out.height) == (90, 70)


def test_areas_move_with_the_image():
    meta = {"subject_area": {"x": 0, "y": 0, "width": 10, "height": 10}}
    out = engine.render(
        plan(
            op("dropshadow", horizontal=-20, vertical=-20, sigma=0),
            op("crop", width=10, height=10, anchor="subjectarea"),
        ),
        primary(),
        dynamic_metadata=meta,
    )
    assert red_mask(decode(out.body)).all()


def test_jpeg_output_flattens_the_shadow_onto_white():
    out = engine.render(
        plan(op("dropshadow", horizontal=8, vertical=0, sigma=0, opacity=50), fmt="jpg"),
        primary(),
    )
    pixels = decode(out.body)
    assert pixels.shape == (30, 48, 3)
    assert abs(int(pixels[15, 45, 0]) - 128) <= 6  # half black over white


def test_animated_source_gets_a_shadow_per_frame():
    frames = [scene(20, 10) for _ in range(2)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 10)
    out = engine.render(
        plan(op("dropshadow", horizontal=2, vertical=2, sigma=0), fmt="gif"),
        bytes(strip.gifsave_buffer()),
    )
    assert (out.width, out.height) == (22, 12)


def test_huge_sigma_is_refused_by_the_work_budget_not_run():
    # A 60000-tap kernel on a 40x30 image would blur a 60000x60000 extension.
    with pytest.raises(engine.OverBudget, match="too expensive"):
        engine.render(plan(op("dropshadow", sigma=10000, blur_radius=1)), primary())
