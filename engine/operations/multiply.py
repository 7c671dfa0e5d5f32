"""rokka ``multiply``: scale every channel by a factor or a colour; alpha preserved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.formats import parse_hex
from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind, parameters


@dataclass(frozen=True, slots=True)
class MultiplyParameters:
    """``factor`` (0-1) for every channel, or ``factor_color`` (hex RGB) per channel."""

    factor: float
    factor_color: str | None


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Multiply colour by ``factor`` (0-1), or per channel by ``factor_color`` (hex) if set."""
    colour, alpha = split_alpha(to_srgb(image))
    p = parameters(MultiplyParameters, options)
    if p.factor_color:
        factors = [c / 255 for c in parse_hex(p.factor_color)]
    else:
        factors = [float(p.factor)] * 3
    return join_alpha((colour * factors).cast("uchar"), alpha)


KIND = OperationKind("multiply", apply, MultiplyParameters)
