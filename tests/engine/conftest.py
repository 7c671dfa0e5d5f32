"""Shared helpers: synthetic images, plan builders, decoding outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pyvips

import engine
from stacks.operations import OPERATIONS
from stacks.options import complete_options
from stacks.plan import Operation, RenderPlan

GREY = 128
RED = (255, 0, 0)


@pytest.fixture(autouse=True, scope="session")
def _configure_engine() -> None:
    engine.configure(concurrency=1)


def scene(
    width: int = 400,
    height: int = 300,
    *,
    square: tuple[int, int, int] | None = None,
    colour: tuple[int, int, int] = RED,
) -> pyvips.Image:
    """A flat grey sRGB image, with a ``square`` (x, y, side) of ``colour`` if given."""
    arr = np.full((height, width, 3), GREY, dtype=np.uint8)
    if square is not None:
        x, y, side = square
        arr[y : y + side, x : x + side] = colour
    return pyvips.Image.new_from_array(arr, interpretation="srgb")


def png(image: pyvips.Image) -> bytes:
    return bytes(image.pngsave_buffer())


def jpeg(image: pyvips.Image, **kwargs: Any) -> bytes:
    return bytes(image.jpegsave_buffer(Q=95, **kwargs))


def decode(body: bytes) -> np.ndarray:
    return pyvips.Image.new_from_buffer(body, "").numpy()


def red_mask(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 200) & (g < 80) & (b < 80)


def red_centre(pixels: np.ndarray) -> tuple[float, float]:
    """Centre (x, y) of the red pixels; asserts there are some."""
    ys, xs = np.nonzero(red_mask(pixels))
    assert len(xs) > 0, "no red pixels in the output"
    return float(xs.mean()), float(ys.mean())


def op(name: str, **options: Any) -> Operation:
    """An Operation with defaults filled in by the stacks operation table itself.

    Using stacks' table (not a copy of its defaults) keeps the engine tests on the real
    contract between the two packages; ``enabled`` is split off as stacks does.
    """
    enabled = options.pop("enabled", True)
    spec = OPERATIONS[name]
    complete = spec.complete(options)
    complete.pop("enabled", None)
    return Operation(name, complete, enabled=enabled)


def plan(*ops: Operation, fmt: str = "png", **options: Any) -> RenderPlan:
    """A plan with every stack option at its stacks-table default unless given."""
    return RenderPlan(operations=ops, options=complete_options(options), output_format=fmt)
