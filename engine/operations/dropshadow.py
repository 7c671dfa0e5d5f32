"""rokka ``dropshadow``: a blurred, coloured copy of the image's shape behind it.

The shadow is the image's alpha (a rectangle for an opaque image), moved ``horizontal`` /
``vertical`` px, blurred with a Gaussian of ``sigma`` px, coloured ``color`` at ``opacity``
percent. The canvas grows to hold the image and the shadow with its blur margin: the margin
is ``blur_radius`` px when set, else three sigma (where the Gaussian has faded to about 1 %,
as ImageMagick's radius 0 means "as far as it shows"); blur beyond the margin is cut. After
a resize every pixel-valued option is dpr-scaled, as crop's are. Areas move with the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.formats import parse_hex
from engine.geometry import Box, Size
from engine.operations.context import RenderContext, size_of, to_srgb
from engine.operations.kind import OperationKind, Sizing, megapixels, parameters

# Where the blur kernel is cut, relative to its peak: about three sigma.
_MIN_AMPLITUDE = 0.01


@dataclass(frozen=True, slots=True)
class DropshadowParameters:
    """``horizontal``/``vertical`` px offset (-100-100; + is right/down); ``opacity``
    percent (0-100); ``sigma`` px (0-10000) of the blur; ``blur_radius`` px (0-10000, 0:
    three sigma) of the margin the blur may fill; ``color`` hex RGB."""

    horizontal: int
    vertical: int
    opacity: int
    sigma: float
    blur_radius: float
    color: str


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything goes, px: the canvas, the image's top-left on it, the shadow
    layer's top-left (the layer is the image grown by ``margin`` on every side)."""

    canvas: Size
    image_x: int
    image_y: int
    shadow_x: int
    shadow_y: int
    margin: int
    sigma: float


def layout(before: Size, p: DropshadowParameters, factor: float) -> Layout:
    """The geometry of a shadow on an image of ``before`` size; ``factor`` multiplies the
    pixel options (the dpr after a resize, else 1)."""
    dx, dy = round(p.horizontal * factor), round(p.vertical * factor)
    sigma = float(p.sigma) * factor
    if p.blur_radius > 0:
        margin = math.ceil(float(p.blur_radius) * factor)
    else:
        margin = math.ceil(3 * sigma) if sigma > 0 else 0
    left = min(0, dx - margin)
    top = min(0, dy - margin)
    right = max(before.width, dx + before.width + margin)
    bottom = max(before.height, dy + before.height + margin)
    return Layout(
        canvas=Size(right - left, bottom - top),
        image_x=-left,
        image_y=-top,
        shadow_x=dx - margin - left,
        shadow_y=dy - margin - top,
        margin=margin,
        sigma=sigma,
    )


def _factor(resized: bool, dpr: float) -> float:
    return dpr if resized else 1.0


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(DropshadowParameters, options)
    before = size_of(image)
    plan = layout(before, p, _factor(ctx.resized, ctx.dpr))
    had_alpha = image.hasalpha()
    image = to_srgb(image)
    if not had_alpha:
        image = image.bandjoin(255)
    m = plan.margin
    shape = image[3].embed(m, m, before.width + 2 * m, before.height + 2 * m)
    if plan.sigma > 0:
        shape = shape.gaussblur(plan.sigma, min_ampl=_MIN_AMPLITUDE)
    shape = (shape * (int(p.opacity) / 100)).cast("uchar")
    colour = (shape.new_from_image(parse_hex(p.color))).cast("uchar")
    shadow = colour.bandjoin(shape).copy(interpretation="srgb")
    canvas = plan.canvas
    blank = pyvips.Image.black(canvas.width, canvas.height, bands=4).copy(interpretation="srgb")
    out = blank.composite(
        [shadow, image],
        ["over", "over"],
        x=[plan.shadow_x, plan.image_x],
        y=[plan.shadow_y, plan.image_y],
    ).cast("uchar")
    ix, iy = plan.image_x, plan.image_y
    if (ix, iy) != (0, 0):
        ctx.move_areas(lambda b: Box(b.x + ix, b.y + iy, b.width, b.height))
    if not had_alpha and canvas == before:
        out = out[:3]  # the opaque image covers the whole canvas
    return out


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """Exact: the canvas holding image and shadow (see :func:`layout`)."""
    p = parameters(DropshadowParameters, options)
    return layout(before, p, _factor(sizing.resized, sizing.dpr)).canvas


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """Compositing is a few passes of the canvas. The separable blur (a kernel about six
    sigma wide) runs on the shadow layer extended by the kernel on every side, at about a
    pass per 30 taps (measured): a sigma far bigger than the image costs what its kernel
    costs, so a tiny image with ``sigma`` 10000 is refused by the work budget, not run."""
    p = parameters(DropshadowParameters, options)
    work = 4.0 * megapixels(after)
    if p.sigma > 0:
        kernel = math.ceil(6.0 * float(p.sigma)) + 1
        extended = Size(after.width + kernel, after.height + kernel)
        work += megapixels(extended) * (2.0 + kernel / 30.0)
    return work


KIND = OperationKind("dropshadow", apply, DropshadowParameters, size=size, passes=passes)
