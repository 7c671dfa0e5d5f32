"""rokka ``grayscale``: luminance only, kept as 3-band sRGB; alpha preserved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    colour, alpha = split_alpha(to_srgb(image))
    # Stay 3-band sRGB so later colour ops and every encoder see the same layout.
    return join_alpha(colour.colourspace("b-w").colourspace("srgb"), alpha)


KIND = OperationKind("grayscale", apply)
