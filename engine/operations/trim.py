"""rokka ``trim``: cut away borders of the top-left pixel's colour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Box, Size, offset_box
from engine.operations.context import RenderContext, split_alpha
from engine.operations.kind import OperationKind, Sizing, megapixels, parameters


@dataclass(frozen=True, slots=True)
class TrimParameters:
    """``fuzzy``: how far (percent of the colour range, 0-100) a border pixel may be from
    the top-left pixel's colour and still be cut."""

    fuzzy: float


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    # find_trim reads every pixel before the cut is known; keep them, or a source decoded
    # sequentially (a shrunk leading resize) would be read out of order when encoding.
    image = image.copy_memory()
    colour, _ = split_alpha(image)
    # fuzzy is a percent (0-100) of the colour range; find_trim wants a 0-255 difference.
    threshold = float(parameters(TrimParameters, options).fuzzy) * 255 / 100
    background = colour(0, 0)
    left, top, width, height = colour.find_trim(threshold=threshold, background=background)
    if width == 0 or height == 0 or (width, height) == (image.width, image.height):
        return image
    region = Box(left, top, width, height)
    ctx.move_areas(lambda b: offset_box(b, region))
    return image.crop(left, top, width, height)


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """Trimming depends on the pixels and never enlarges: ``before`` is the upper bound."""
    return before


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    # find_trim scans the image (with a median filter) before the cut.
    return 6.0 * megapixels(max(before, after, key=lambda s: s.pixels))


KIND = OperationKind("trim", apply, TrimParameters, size=size, passes=passes)
