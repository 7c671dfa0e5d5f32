"""rokka ``trim``: cut away borders of the top-left pixel's colour."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.geometry import Box, offset_box
from engine.operations.context import RenderContext, split_alpha


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    colour, _ = split_alpha(image)
    # fuzzy is a percent (0-100) of the colour range; find_trim wants a 0-255 difference.
    threshold = float(options.get("fuzzy") or 0) * 255 / 100
    background = colour(0, 0)
    left, top, width, height = colour.find_trim(threshold=threshold, background=background)
    if width == 0 or height == 0 or (width, height) == (image.width, image.height):
        return image
    region = Box(left, top, width, height)
    ctx.move_areas(lambda b: offset_box(b, region))
    return image.crop(left, top, width, height)
