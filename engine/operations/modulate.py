"""rokka ``modulate``: brightness, saturation and hue in LCh; alpha preserved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind, parameters


@dataclass(frozen=True, slots=True)
class ModulateParameters:
    """``brightness`` and ``saturation`` percent (0-500, 100 = unchanged), ``hue`` degrees
    (0-360)."""

    brightness: int
    saturation: int
    hue: int


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
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


KIND = OperationKind("modulate", apply, ModulateParameters)
