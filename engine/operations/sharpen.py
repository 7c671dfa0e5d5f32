"""rokka ``sharpen``: libvips unsharp masking with rokka's parameter names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Size
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind, megapixels, parameters


@dataclass(frozen=True, slots=True)
class SharpenParameters:
    """libvips ``sharpen``: ``sigma`` of the mask in pixels, slopes ``m1`` (flat) and ``m2``
    (jaggy), threshold ``x1``, most brightening ``y2`` and darkening ``y3`` (L* units)."""

    sigma: float
    x1: float
    y2: float
    y3: float
    m1: float
    m2: float


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """libvips ``sharpen`` with rokka's parameter names (m1, m2, sigma, x1, y2, y3)."""
    p = parameters(SharpenParameters, options)
    out = image.sharpen(
        sigma=float(p.sigma),
        x1=float(p.x1),
        y2=float(p.y2),
        y3=float(p.y3),
        m1=float(p.m1),
        m2=float(p.m2),
    )
    # sharpen works in LabS and returns sRGB; keep the input's layout.
    return out.cast(image.format) if out.format != image.format else out


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    # A blur, a LabS round trip and the tone curve: about six passes.
    return 6.0 * megapixels(max(before, after, key=lambda s: s.pixels))


KIND = OperationKind("sharpen", apply, SharpenParameters, passes=passes)
