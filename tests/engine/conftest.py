"""Shared helpers: synthetic images, plan builders, decoding outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pyvips

import engine
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
    """An Operation with rokka's defaults filled in, as stacks would build it."""
    defaults: dict[str, dict[str, Any]] = {
        "resize": {
            "width": None,
            "height": None,
            "mode": "box",
            "upscale": True,
            "upscale_dpr": True,
            "sharpen": False,
        },
        "crop": {
            "anchor": "auto",
            "fallback": "center_center",
            "mode": "absolute",
            "scale": 100,
            "movearea_x": None,
            "movearea_y": None,
            "area": None,
        },
        "rotate": {"background_color": "FFFFFF", "background_opacity": 0},
        "autorotate": {"width": None, "height": None, "rotation_direction": None},
        "blur": {"sigma": 4, "radius": 0},
        "trim": {"fuzzy": 0},
        "alpha": {"mode": "mask", "opacity": 50},
        "modulate": {"brightness": 100, "saturation": 100, "hue": 0},
        "multiply": {"factor": 0.96, "factor_color": None},
        "sharpen": {"m1": 0.4, "m2": 0.8, "sigma": 0.7, "x1": 2.0, "y2": 10.0, "y3": 20.0},
    }
    return Operation(name, {**defaults.get(name, {}), **options})


STACK_DEFAULTS: dict[str, Any] = {
    "jpg.quality": 80,
    "webp.quality": 80,
    "avif.quality": 45,
    "heif.quality": 40,
    "gif.quality": 70,
    "png.compression_level": 7,
    "interlacing.mode": "plane",
    "dpr": 1.0,
    "autoformat": False,
    "transparency.color": None,
    "jpg.transparency.color": "FFFFFF",
}


def plan(*ops: Operation, fmt: str = "png", **options: Any) -> RenderPlan:
    return RenderPlan(operations=ops, options={**STACK_DEFAULTS, **options}, output_format=fmt)
