"""rokka ``autorotate``: turn a quarter to match a box's aspect (EXIF is applied on load)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Size, autorotate_turns
from engine.operations.context import RenderContext, size_of
from engine.operations.kind import OperationKind, Sizing, parameters
from engine.operations.rotate import quarter_turns


@dataclass(frozen=True, slots=True)
class AutorotateParameters:
    """A box ``width`` x ``height`` (pixels, aspect only) to turn the image to match, or
    neither; ``rotation_direction`` clockwise (also when not given) or counterclockwise."""

    width: int | None
    height: int | None
    rotation_direction: str | None


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    # The EXIF orientation is already applied on load, so only the box form does anything.
    p = parameters(AutorotateParameters, options)
    if not autorotate_turns(size_of(image), p.width, p.height):
        return image
    clockwise = (p.rotation_direction or "clockwise") == "clockwise"
    return quarter_turns(image, 1 if clockwise else 3, ctx)


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """Width and height swap when the box's aspect differs from the image's (exact)."""
    p = parameters(AutorotateParameters, options)
    if autorotate_turns(before, p.width, p.height):
        return Size(before.height, before.width)
    return before


KIND = OperationKind("autorotate", apply, AutorotateParameters, size=size)
