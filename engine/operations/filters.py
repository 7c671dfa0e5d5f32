"""Convolution filters: blur and sharpen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.geometry import Size
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind, megapixels


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


def blur_passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    sigma = float(options.get("sigma") if options.get("sigma") is not None else 4)
    # Separable Gaussian: two 1-D masks of about 3.6 sigma taps each, per band.
    return megapixels(before) * (1.0 + max(sigma, 0.0))


def sharpen_passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    # A blur, a LabS round trip and the tone curve: about six passes.
    return 6.0 * megapixels(max(before, after, key=lambda s: s.pixels))


BLUR = OperationKind("blur", blur, passes=blur_passes)
SHARPEN = OperationKind("sharpen", sharpen, passes=sharpen_passes)
