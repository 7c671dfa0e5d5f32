"""rokka ``blur``: Gaussian blur."""

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


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Gaussian blur; ``sigma`` in pixels (0 = none). The deprecated ``radius`` is ignored."""
    sigma = float(parameters(BlurParameters, options).sigma)
    if sigma <= 0:
        return image
    return image.gaussblur(sigma)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    sigma = float(parameters(BlurParameters, options).sigma)
    # Separable Gaussian: two 1-D masks of about 3.6 sigma taps each, per band.
    return megapixels(before) * (1.0 + max(sigma, 0.0))


KIND = OperationKind("blur", apply, BlurParameters, passes=passes)
