"""primitive: the image redrawn as translucent shapes, repeatably, at the image's size."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

import engine
from engine.geometry import Size
from engine.operations import primitive
from tests.engine.conftest import decode, op, plan, png


def _picture() -> np.ndarray:
    """A two-colour gradient with a red square: 240 x 180."""
    x = np.linspace(0, 255, 240)[None, :, None]
    y = np.linspace(0, 255, 180)[:, None, None]
    arr = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2).astype(np.uint8)
    arr[60:120, 90:150] = (255, 0, 0)
    return arr


def _render(count: int, mode: int = 0) -> np.ndarray:
    source = png(pyvips.Image.new_from_array(_picture(), interpretation="srgb"))
    out = engine.render(plan(op("primitive", count=count, mode=mode)), source)
    assert (out.width, out.height) == (240, 180)
    return decode(out.body).astype(int)


def _error(pixels: np.ndarray) -> float:
    return float(np.abs(pixels[..., :3] - _picture()).mean())


def test_more_shapes_come_closer_to_the_image():
    flat = np.abs(_picture().reshape(-1, 3) - _picture().reshape(-1, 3).mean(axis=0)).mean()
    drawn = _render(60)
    few, many = _error(_render(3)), _error(drawn)
    assert many < few < flat
    # The red square is drawn red.
    square = drawn[75:105, 105:135]
    assert square[..., 0].mean() > 200 and square[..., 1].mean() < 80


def test_same_options_same_picture():
    assert np.array_equal(_render(10, 3), _render(10, 3))


@pytest.mark.parametrize("mode", range(9))
def test_every_mode_draws_its_own_shapes(mode):
    # The search runs on the working copy, at most WORK_SIDE pixels a side.
    pixels = _picture()[::4, ::4]
    background, shapes = primitive._search(
        pixels, primitive.PrimitiveParameters(count=12, mode=mode), b"s" * 32
    )
    assert len(shapes) == 12
    kinds = {kind for kind, _, _ in shapes}
    assert kinds <= set(primitive.SHAPES) - {6} if mode == 0 else kinds == {mode}
    document = primitive.svg(Size(480, 360), Size(60, 45), background, shapes).decode()
    tag = {
        1: "<polygon",
        2: "<rect",
        3: "<ellipse",
        4: "<ellipse",
        5: "<rect",
        6: "<path",
        7: "<ellipse",
        8: "<polygon",
    }
    if mode:
        assert document.count(tag[mode]) == 12 + (1 if tag[mode] == "<rect" else 0)
    # The shapes are vectors: drawn at any size, they are crisp at that size.
    drawn = pyvips.Image.svgload_buffer(document.encode())
    assert (drawn.width, drawn.height) == (480, 360)


def test_mode_nine_is_no_shape():
    source = png(pyvips.Image.new_from_array(_picture(), interpretation="srgb"))
    with pytest.raises(engine.EngineError, match="mode 9") as refused:
        engine.render(plan(op("primitive", mode=9)), source)
    assert refused.value.status == 400


def test_alpha_is_kept():
    arr = np.zeros((60, 80, 4), dtype=np.uint8)
    arr[..., 1] = 200
    arr[..., 3] = 128
    out = engine.render(
        plan(op("primitive", count=5)), png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    )
    assert np.array_equal(decode(out.body)[..., 3], arr[..., 3])


def test_the_search_costs_the_same_on_any_size():
    small = engine.plan_cost(plan(op("primitive", count=200)), _info(200, 150))
    large = engine.plan_cost(plan(op("primitive", count=200)), _info(4000, 3000))
    few = engine.plan_cost(plan(op("primitive", count=10)), _info(200, 150))
    assert few.work < small.work < large.work
    with pytest.raises(engine.OverBudget):
        engine.plan_cost(plan(op("primitive", count=200)), _info(10000, 5000))


def _info(width: int, height: int) -> engine.ImageInfo:
    return engine.ImageInfo(width, height, "png", "image/png", False, 1, True, 1)
