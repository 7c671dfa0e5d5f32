"""rokka ``sepia``: the classic sepia tone; alpha preserved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind

# The classic sepia-tone matrix (rows: output r, g, b; columns: input r, g, b).
SEPIA_MATRIX = [
    [0.393, 0.769, 0.189],
    [0.349, 0.686, 0.168],
    [0.272, 0.534, 0.131],
]


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    colour, alpha = split_alpha(to_srgb(image))
    toned = colour.recomb(SEPIA_MATRIX).cast("uchar")  # cast clips to 0-255
    return join_alpha(toned.copy(interpretation="srgb"), alpha)


KIND = OperationKind("sepia", apply)
