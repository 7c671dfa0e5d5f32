"""Table-driven tests of engine.geometry (no pixels)."""

from __future__ import annotations

import pytest

from engine.geometry import (
    Area,
    Areas,
    Box,
    Size,
    autorotate_turns,
    crop_box,
    offset_box,
    orient_box,
    oriented_size,
    parse_areas,
    parse_box,
    resize_size,
    rotate_box,
    rotated_size,
    scale_box,
)
from engine.sizing import output_size
from stacks.plan import Operation, RenderPlan
from tests.engine.conftest import op

IMG = Size(400, 300)


# --- DPR table of rokka-api.md §3, row by row (300 px wide source) ----------------------
@pytest.mark.parametrize(
    ("upscale", "upscale_dpr", "dpr", "width", "expected"),
    [
        (True, True, 1, 200, 200),
        (True, True, 2, 200, 400),
        (True, True, 1, 400, 400),
        (True, True, 2, 400, 800),
        (False, True, 1, 200, 200),
        (False, True, 2, 200, 400),
        (False, True, 1, 400, 300),
        (False, True, 2, 400, 600),
        (False, False, 1, 200, 200),
        (False, False, 2, 200, 300),
        (False, False, 1, 400, 300),
        (False, False, 2, 400, 300),
    ],
)
def test_dpr_table(upscale: bool, upscale_dpr: bool, dpr: float, width: int, expected: int):
    out = resize_size(
        Size(300, 200),
        width=width,
        height=None,
        upscale=upscale,
        upscale_dpr=upscale_dpr,
        dpr=dpr,
    )
    assert out.width == expected
    assert out.height == round(200 * expected / 300)


@pytest.mark.parametrize(
    ("mode", "width", "height", "expected"),
    [
        ("box", 200, 200, Size(200, 150)),
        ("box", 100, 300, Size(100, 75)),
        ("fill", 200, 200, Size(267, 200)),
        ("fill", 100, 300, Size(400, 300)),
        ("absolute", 123, 45, Size(123, 45)),
        ("absolute", 200, None, Size(200, 150)),
        ("box", None, 150, Size(200, 150)),
        ("box", 800, 800, Size(800, 600)),
    ],
)
def test_resize_modes(mode: str, width: int | None, height: int | None, expected: Size):
    assert resize_size(IMG, width=width, height=height, mode=mode) == expected


def test_resize_no_upscale_caps_at_source():
    assert resize_size(IMG, width=800, height=800, upscale=False) == IMG


# --- areas --------------------------------------------------------------------------------
def test_parse_box_pixels_defaults_and_percentage():
    assert parse_box({"x": 10, "y": 20}, IMG) == Box(10, 20, 1, 1)
    assert parse_box({"x": 10, "y": 20, "width": 30, "height": 40}, IMG) == Box(10, 20, 30, 40)
    assert parse_box({"x": 25, "y": 50, "width": 50, "height": 10, "percentage": True}, IMG) == Box(
        100, 150, 200, 30
    )


def test_parse_areas_all_kinds():
    meta = {
        "subject_area": {"x": 1, "y": 2, "width": 3, "height": 4},
        "crop_area": {"x": 5, "y": 6, "width": 7, "height": 8},
        "detection_face": {
            "faces": [
                {"x": 0, "y": 0, "width": 10, "height": 10},
                {"x": 20, "y": 20, "width": 10, "height": 10},
            ]
        },
        "multi_areas": {
            "wide": {"crop_area": {"x": 0, "y": 0, "width": 160, "height": 90}},
            "tall": {"subject_area": {"x": 9, "y": 9}},
        },
    }
    areas = parse_areas(meta, IMG)
    assert areas.subject == Box(1, 2, 3, 4)
    assert areas.crop == Box(5, 6, 7, 8)
    assert areas.face == Box(0, 0, 30, 30)
    assert areas.multi["wide"] == Area("crop_area", Box(0, 0, 160, 90))
    assert areas.multi["tall"] == Area("subject_area", Box(9, 9, 1, 1))
    assert parse_areas(None, IMG) == Areas()


def test_select_named_area_and_fallback():
    areas = Areas(subject=Box(1, 1, 1, 1), multi={"wide": Area("crop_area", Box(0, 0, 16, 9))})
    chosen = areas.select("wide")
    assert chosen.crop == Box(0, 0, 16, 9) and chosen.subject is None
    assert areas.select("missing") is areas
    assert areas.select(None) is areas


# --- transforms ---------------------------------------------------------------------------
def test_scale_box():
    assert scale_box(Box(100, 50, 40, 40), 0.5, 0.25) == Box(50, 12.5, 20, 10)


@pytest.mark.parametrize(
    ("box", "region", "expected"),
    [
        (Box(100, 100, 40, 40), Box(50, 50, 200, 200), Box(50, 50, 40, 40)),
        (Box(0, 0, 100, 100), Box(50, 50, 200, 200), Box(0, 0, 50, 50)),
        (Box(0, 0, 10, 10), Box(50, 50, 200, 200), None),
    ],
)
def test_offset_box(box: Box, region: Box, expected: Box | None):
    assert offset_box(box, region) == expected


@pytest.mark.parametrize(
    ("angle", "expected"),
    [
        (0, Box(10, 20, 30, 40)),
        (90, Box(300 - 60, 10, 40, 30)),
        (180, Box(400 - 40, 300 - 60, 30, 40)),
        (270, Box(20, 400 - 40, 40, 30)),
        (-90, Box(20, 400 - 40, 40, 30)),
        (360, Box(10, 20, 30, 40)),
    ],
)
def test_rotate_box_quarter_turns(angle: float, expected: Box):
    assert rotate_box(Box(10, 20, 30, 40), IMG, angle) == expected


def test_rotate_box_arbitrary_keeps_centre_and_grows():
    out = rotated_size(IMG, 45)
    assert out == Size(495, 495)
    centred = rotate_box(Box(190, 140, 20, 20), IMG, 45, out)
    cx, cy = centred.center
    assert cx == pytest.approx(247.5) and cy == pytest.approx(247.5)
    assert centred.width == pytest.approx(20 * 2**0.5)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        # stored 400x300 image, box at top-left corner region (10,20,30,40)
        (1, Box(10, 20, 30, 40)),
        (2, Box(400 - 40, 20, 30, 40)),
        (3, Box(400 - 40, 300 - 60, 30, 40)),
        (4, Box(10, 300 - 60, 30, 40)),
        (5, Box(20, 10, 40, 30)),
        (6, Box(300 - 60, 10, 40, 30)),
        (7, Box(300 - 60, 400 - 40, 40, 30)),
        (8, Box(20, 400 - 40, 40, 30)),
    ],
)
def test_orient_box_exif(orientation: int, expected: Box):
    assert orient_box(Box(10, 20, 30, 40), IMG, orientation) == expected
    assert oriented_size(IMG, orientation) == (IMG if orientation < 5 else Size(300, 400))


# --- crop ---------------------------------------------------------------------------------
SUBJ = Box(300, 40, 40, 40)  # centre (320, 60)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # no area: fallback center_center
        ({}, Box(150, 100, 100, 100)),
        # auto centres on the subject area
        ({"subject": SUBJ}, Box(270, 10, 100, 100)),
        # ... clamped inside the image at edges
        ({"subject": Box(390, 0, 10, 10)}, Box(300, 0, 100, 100)),
        # subject wins over crop area; crop area wins over face
        ({"subject": SUBJ, "crop_area": Box(0, 0, 50, 50)}, Box(270, 10, 100, 100)),
        ({"crop_area": Box(5, 6, 70, 80), "face": SUBJ}, Box(5, 6, 70, 80)),
        ({"face": SUBJ}, Box(270, 10, 100, 100)),
        # crop area clipped to the image
        ({"crop_area": Box(350, 250, 100, 100)}, Box(350, 250, 50, 50)),
        # explicit anchors
        ({"anchor": "subjectarea", "subject": SUBJ}, Box(270, 10, 100, 100)),
        ({"anchor": "subjectarea"}, Box(150, 100, 100, 100)),
        ({"anchor": "subjectarea", "fallback": "left_top"}, Box(0, 0, 100, 100)),
        ({"anchor": "croparea", "crop_area": Box(1, 2, 3, 4), "subject": SUBJ}, Box(1, 2, 3, 4)),
        ({"anchor": "face", "face": SUBJ, "subject": Box(0, 0, 1, 1)}, Box(270, 10, 100, 100)),
        ({"anchor": "smart", "smart": Box(50, 50, 1, 1)}, Box(0, 0, 100, 100)),
        ({"anchor": "left_top", "subject": SUBJ}, Box(0, 0, 100, 100)),
        ({"anchor": "right_bottom"}, Box(300, 200, 100, 100)),
        ({"anchor": "center_bottom"}, Box(150, 200, 100, 100)),
        ({"anchor": "left-center"}, Box(0, 100, 100, 100)),
        ({"anchor": "20_30"}, Box(20, 30, 100, 100)),
        ({"anchor": "350_250"}, Box(300, 200, 100, 100)),
        # scale shrinks around the centre
        ({"scale": 50}, Box(175, 125, 50, 50)),
        # movearea shifts the subject by percent of its size
        ({"subject": Box(150, 100, 40, 40), "movearea_x": 50}, Box(140, 70, 100, 100)),
        ({"subject": Box(150, 100, 40, 40), "movearea_y": -100}, Box(120, 30, 100, 100)),
    ],
)
def test_crop_box_anchors(kwargs: dict, expected: Box):
    assert crop_box(IMG, width=100, height=100, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"width": 1, "height": 1, "mode": "ratio"}, Box(50, 0, 300, 300)),
        ({"width": 16, "height": 9, "mode": "ratio"}, Box(0, 38, 400, 225)),
        ({"width": 1, "height": 1, "mode": "ratio", "scale": 50}, Box(125, 75, 150, 150)),
        ({"width": 1, "height": 1, "mode": "ratio", "subject": SUBJ}, Box(100, 0, 300, 300)),
        ({"width": 9, "height": 9, "mode": "box", "subject": SUBJ}, Box(300, 40, 40, 40)),
        ({"width": 2, "height": 1, "mode": "area", "subject": SUBJ}, Box(280, 40, 80, 40)),
        (
            {"width": 1, "height": 1, "mode": "area", "subject": Box(0, 0, 380, 10)},
            Box(40, 0, 300, 300),
        ),
        ({"width": 1, "height": 1, "mode": "area"}, Box(50, 0, 300, 300)),
        # absolute crop larger than the image behaves like ratio
        ({"width": 800, "height": 400}, Box(0, 50, 400, 200)),
        ({"width": 1000, "height": 1000, "subject": SUBJ}, Box(100, 0, 300, 300)),
    ],
)
def test_crop_box_modes(kwargs: dict, expected: Box):
    assert crop_box(IMG, **kwargs) == expected


def test_multi_area_seed_example():
    """crop-width-16-height-9-mode-ratio-area-landscape_16_9 (rokka dynamic metadata docs)."""
    image = Size(3000, 2000)
    meta = {
        "multi_areas": {
            "landscape_16_9": {"crop_area": {"width": 1600, "height": 900, "x": 500, "y": 400}}
        }
    }
    for name, expected in [
        ("landscape_16_9", Box(500, 400, 1600, 900)),
        ("portrait_3_4", Box(0, 156, 3000, 1688)),
    ]:
        areas = parse_areas(meta, image).select(name)
        box = crop_box(
            image,
            width=16,
            height=9,
            mode="ratio",
            subject=areas.subject,
            crop_area=areas.crop,
            face=areas.face,
        )
        assert box == expected


@pytest.mark.parametrize(
    ("crop_area", "expected"),
    [
        # a 16:9 area is cut exactly, as rokka documents for crop areas
        (Box(40, 50, 160, 90), Box(40, 50, 160, 90)),
        # so is an area of another ratio: rokka "always" cuts a crop area exactly
        (Box(40, 50, 160, 120), Box(40, 50, 160, 120)),
        # a 16:9 area half outside the image: the clipped part's largest 16:9 box
        (Box(320, 100, 160, 90), Box(320, 122, 80, 45)),
        # "16:9" as people write it (1366x768, 0.05 % off) counts as 16:9
        (Box(0, 0, 1366 / 4, 768 / 4), Box(0, 0, 341, 192)),
    ],
)
def test_crop_area_with_mode_ratio(crop_area: Box, expected: Box):
    assert crop_box(IMG, width=16, height=9, mode="ratio", crop_area=crop_area) == expected


def test_a_clipped_16_9_area_stays_16_9():
    box = crop_box(IMG, width=16, height=9, mode="ratio", crop_area=Box(-50, 250, 320, 180))
    assert box == Box(90, 250, 89, 50)


def test_crop_area_with_absolute_mode_is_cut_exactly():
    assert crop_box(IMG, width=16, height=9, crop_area=Box(40, 50, 160, 120)) == Box(
        40, 50, 160, 120
    )


@pytest.mark.parametrize("scale", [0.1234, 0.37, 0.5, 1.0])
def test_named_16_9_area_after_a_resize_stays_16_9(scale: float):
    """The seed example after a downscale: the scaled area is rounded to a 16:9 box."""
    image = Size(round(3000 * scale), round(2000 * scale))
    area = Box(500 * scale, 400 * scale, 1600 * scale, 900 * scale)
    box = crop_box(image, width=16, height=9, mode="ratio", crop_area=area)
    assert abs(box.width / box.height - 16 / 9) <= 1 / box.height + 1e-9
    assert abs(box.width - 1600 * scale) <= 1.5


def test_percentage_subject_area_crop():
    areas = parse_areas(
        {"subject_area": {"x": 75, "y": 10, "width": 10, "height": 10, "percentage": True}}, IMG
    )
    assert crop_box(IMG, width=100, height=100, subject=areas.subject) == Box(270, 0, 100, 100)


# --- whole plan -------------------------------------------------------------------------
def _plan(*ops: Operation, dpr: float = 1.0) -> RenderPlan:
    return RenderPlan(operations=ops, options={"dpr": dpr}, output_format="jpg")


def _resize(**o) -> Operation:
    base = {
        "width": None,
        "height": None,
        "mode": "box",
        "upscale": True,
        "upscale_dpr": True,
        "sharpen": False,
    }
    return Operation("resize", {**base, **o})


def _crop(**o) -> Operation:
    base = {
        "anchor": "auto",
        "fallback": "center_center",
        "mode": "absolute",
        "scale": 100,
        "movearea_x": None,
        "movearea_y": None,
        "area": None,
    }
    return Operation("crop", {**base, **o})


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (_plan(), Size(6000, 4000)),
        (
            _plan(_resize(width=500, height=500, mode="fill"), _crop(width=500, height=500)),
            Size(500, 500),
        ),
        (
            _plan(_resize(width=500, height=500, mode="fill"), _crop(width=500, height=500), dpr=2),
            Size(1000, 1000),
        ),
        (_plan(op("rotate", angle=90)), Size(4000, 6000)),
        (_plan(op("autorotate", width=100, height=200)), Size(4000, 6000)),
        (_plan(op("rotate", angle=90, enabled=False)), Size(6000, 4000)),
        (_plan(_crop(width=16, height=9, mode="ratio")), Size(6000, 3375)),
    ],
)
def test_output_size(plan: RenderPlan, expected: Size):
    assert output_size(plan, Size(6000, 4000)) == expected


def test_autorotate_turns():
    assert autorotate_turns(Size(400, 300), 100, 200)
    assert not autorotate_turns(Size(400, 300), 200, 100)
    assert not autorotate_turns(Size(400, 300), None, None)
