"""Colour operations: grayscale, sepia, modulate, multiply. Alpha is always preserved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.formats import parse_hex
from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind, parameters

# The classic sepia-tone matrix (rows: output r, g, b; columns: input r, g, b).
SEPIA_MATRIX = [
    [0.393, 0.769, 0.189],
    [0.349, 0.686, 0.168],
    [0.272, 0.534, 0.131],
]


def grayscale(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    colour, alpha = split_alpha(to_srgb(image))
    # Stay 3-band sRGB so later colour ops and every encoder see the same layout.
    return join_alpha(colour.colourspace("b-w").colourspace("srgb"), alpha)


@dataclass(frozen=True, slots=True)
class ModulateParameters:
    """``brightness`` and ``saturation`` percent (0-500, 100 = unchanged), ``hue`` degrees
    (0-360)."""

    brightness: int
    saturation: int
    hue: int


@dataclass(frozen=True, slots=True)
class MultiplyParameters:
    """``factor`` (0-1) for every channel, or ``factor_color`` (hex RGB) per channel."""

    factor: float
    factor_color: str | None


def sepia(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    colour, alpha = split_alpha(to_srgb(image))
    toned = colour.recomb(SEPIA_MATRIX).cast("uchar")  # cast clips to 0-255
    return join_alpha(toned.copy(interpretation="srgb"), alpha)


def modulate(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """brightness/saturation 0-500 % scale LCh lightness/chroma; hue 0-360 degrees rotates."""
    p = parameters(ModulateParameters, options)
    brightness = float(p.brightness) / 100
    saturation = float(p.saturation) / 100
    hue = float(p.hue)
    if (brightness, saturation, hue) == (1, 1, 0):
        return image
    colour, alpha = split_alpha(to_srgb(image))
    lch = colour.colourspace("lch")
    lch = lch.linear([brightness, saturation, 1], [0, 0, hue])
    return join_alpha(lch.colourspace("srgb").cast("uchar"), alpha)


def multiply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Multiply colour by ``factor`` (0-1), or per channel by ``factor_color`` (hex) if set."""
    colour, alpha = split_alpha(to_srgb(image))
    p = parameters(MultiplyParameters, options)
    if p.factor_color:
        factors = [c / 255 for c in parse_hex(p.factor_color)]
    else:
        factors = [float(p.factor)] * 3
    return join_alpha((colour * factors).cast("uchar"), alpha)


GRAYSCALE = OperationKind("grayscale", grayscale)
SEPIA = OperationKind("sepia", sepia)
MODULATE = OperationKind("modulate", modulate, ModulateParameters)
MULTIPLY = OperationKind("multiply", multiply, MultiplyParameters)
