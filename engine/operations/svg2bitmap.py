"""rokka ``svg2bitmap``: rasterise an SVG source.

rokka rasterises with a browser engine here, for SVGs whose CSS or fonts its default
renderer misses. cropstack has one SVG renderer, librsvg (in the bundled libvips), and every
SVG source is already rasterised by it when decoded; this step leaves those pixels as they
are. SVGs that need a browser's CSS or web fonts render as librsvg draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.geometry import Size
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    return image


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    return 0.0


KIND = OperationKind("svg2bitmap", apply, passes=passes)
