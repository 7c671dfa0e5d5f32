"""rokka ``circlemask``: transparent outside the largest centred circle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Make everything outside the largest centred circle transparent."""
    colour, a = split_alpha(to_srgb(image))
    w, h = image.width, image.height
    radius = min(w, h) / 2
    xy = pyvips.Image.xyz(w, h) - [(w - 1) / 2, (h - 1) / 2]
    distance = (xy[0] * xy[0] + xy[1] * xy[1]) ** 0.5
    circle = (distance <= radius).cast("uchar")  # 255 inside, 0 outside
    mask = circle if a is None else (circle & a)
    return join_alpha(colour, mask)


KIND = OperationKind("circlemask", apply)
