"""rokka ``rotate``: any angle clockwise; quarter turns exact, the canvas grows to fit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.formats import parse_hex
from engine.geometry import Size, rotate90_box, rotate_box, rotated_size
from engine.operations.context import RenderContext, size_of
from engine.operations.kind import OperationKind, Sizing, megapixels, parameters


@dataclass(frozen=True, slots=True)
class RotateParameters:
    """``angle`` in degrees clockwise (0-360); the exposed corners get ``background_color``
    (hex RGB) at ``background_opacity`` percent (0-100)."""

    angle: float
    background_color: str
    background_opacity: float


_QUARTER = {1: "rot90", 2: "rot180", 3: "rot270"}


def quarter_turns(image: pyvips.Image, turns: int, ctx: RenderContext) -> pyvips.Image:
    """``image`` turned ``turns`` quarters clockwise (any integer), areas moved along."""
    turns %= 4
    if turns == 0:
        return image
    size = size_of(image)
    ctx.move_areas(lambda b: rotate90_box(b, size, turns))
    return getattr(image, _QUARTER[turns])()


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(RotateParameters, options)
    angle = float(p.angle) % 360
    if angle % 90 == 0:
        return quarter_turns(image, int(angle // 90), ctx)
    # The exposed corners get background_color at background_opacity (0-100 %); anything
    # below fully opaque needs an alpha band.
    colour = parse_hex(p.background_color)
    opacity = float(p.background_opacity)
    if opacity < 100 and not image.hasalpha():
        image = image.bandjoin(255)
    if image.hasalpha():
        colour = colour[: image.bands - 1] + [opacity * 255 / 100]
    size = size_of(image)
    rotated = image.rotate(angle, background=colour[: image.bands])
    out = size_of(rotated)
    ctx.move_areas(lambda b: rotate_box(b, size, angle, out))
    return rotated


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """The bounding box of the rotated image (exact)."""
    return rotated_size(before, float(parameters(RotateParameters, options).angle))


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    big = megapixels(max(before, after, key=lambda s: s.pixels))
    angle = float(parameters(RotateParameters, options).angle) % 360
    # Quarter turns copy pixels; other angles interpolate every output pixel from a
    # random-access input, measured at ~30 passes.
    return big if angle % 90 == 0 else 30.0 * big


KIND = OperationKind("rotate", apply, RotateParameters, size=size, passes=passes)
