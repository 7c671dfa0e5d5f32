"""The operation table: rokka operation name -> ``apply(image, options, ctx) -> image``.

``options`` holds every parameter of the operation with defaults filled (stacks/plan.py);
``ctx`` carries the areas and dpr, and geometric operations update it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyvips

from engine.operations import alpha, colour, crop, filters, resize, rotation, trim
from engine.operations.context import RenderContext

Apply = Callable[[pyvips.Image, Mapping[str, Any], RenderContext], pyvips.Image]


def noop(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Deprecated by rokka; returns the image unchanged."""
    return image


OPERATIONS: dict[str, Apply] = {
    "resize": resize.apply,
    "crop": crop.apply,
    "rotate": rotation.rotate,
    "autorotate": rotation.autorotate,
    "trim": trim.apply,
    "blur": filters.blur,
    "sharpen": filters.sharpen,
    "grayscale": colour.grayscale,
    "sepia": colour.sepia,
    "modulate": colour.modulate,
    "multiply": colour.multiply,
    "alpha": alpha.alpha,
    "circlemask": alpha.circlemask,
    "noop": noop,
}

__all__ = ["OPERATIONS", "Apply", "RenderContext"]
