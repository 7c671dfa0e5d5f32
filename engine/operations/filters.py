"""Convolution filters: blur and sharpen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.operations.context import RenderContext


def blur(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Gaussian blur; ``sigma`` in pixels (0 = none). The deprecated ``radius`` is ignored."""
    sigma = float(options.get("sigma") if options.get("sigma") is not None else 4)
    if sigma <= 0:
        return image
    return image.gaussblur(sigma)


def sharpen(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """libvips ``sharpen`` with rokka's parameter names (m1, m2, sigma, x1, y2, y3)."""
    defaults = {"sigma": 0.7, "x1": 2.0, "y2": 10.0, "y3": 20.0, "m1": 0.4, "m2": 0.8}
    args = {k: float(options[k]) if options.get(k) is not None else v for k, v in defaults.items()}
    out = image.sharpen(**args)
    # sharpen works in LabS and returns sRGB; keep the input's layout.
    return out.cast(image.format) if out.format != image.format else out
