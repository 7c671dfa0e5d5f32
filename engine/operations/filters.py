"""Convolution filters: blur and sharpen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Size
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind, megapixels, parameters


@dataclass(frozen=True, slots=True)
class BlurParameters:
    """``sigma`` of the Gaussian in pixels (0 = none); ``radius`` is deprecated and ignored."""

    sigma: float
    radius: int


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


def blur(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Gaussian blur; ``sigma`` in pixels (0 = none). The deprecated ``radius`` is ignored."""
    sigma = float(parameters(BlurParameters, options).sigma)
    if sigma <= 0:
        return image
    return image.gaussblur(sigma)


def sharpen(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
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


def blur_passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    sigma = float(parameters(BlurParameters, options).sigma)
    # Separable Gaussian: two 1-D masks of about 3.6 sigma taps each, per band.
    return megapixels(before) * (1.0 + max(sigma, 0.0))


def sharpen_passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    # A blur, a LabS round trip and the tone curve: about six passes.
    return 6.0 * megapixels(max(before, after, key=lambda s: s.pixels))


BLUR = OperationKind("blur", blur, BlurParameters, passes=blur_passes)
SHARPEN = OperationKind("sharpen", sharpen, SharpenParameters, passes=sharpen_passes)
