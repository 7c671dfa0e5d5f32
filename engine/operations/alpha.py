"""rokka ``alpha``: show, extract, remove or scale the alpha channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind, parameters


@dataclass(frozen=True, slots=True)
class AlphaParameters:
    """``mode`` mask, extract, remove or apply; ``opacity`` percent (0-100) for apply."""

    mode: str
    opacity: int


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """``mask``: the alpha channel as an opaque grey image (white = opaque);
    ``extract``: the shape only, black pixels carrying the original alpha;
    ``remove``: drop alpha; ``apply``: multiply alpha by ``opacity`` (0-100 %)."""
    p = parameters(AlphaParameters, options)
    mode = p.mode
    colour, a = split_alpha(to_srgb(image))
    if mode == "remove":
        return colour
    if mode == "apply":
        opacity = float(p.opacity)
        base = a if a is not None else (colour[0] * 0 + 255).cast("uchar")
        return join_alpha(colour, (base * (opacity / 100)).cast("uchar"))
    if a is None:
        a = (colour[0] * 0 + 255).cast("uchar")
    if mode == "extract":
        black = (colour * 0).cast("uchar")
        return join_alpha(black, a)
    return a.bandjoin([a, a]).copy(interpretation="srgb")


KIND = OperationKind("alpha", apply, AlphaParameters)
