"""rokka ``resize``: box, fill or absolute, with upscale, upscale_dpr, sharpen and the stack dpr.

The target size is decided on the full-size geometry; the pixels may arrive shrunk by the
decoder (``decode_shrink`` allows up to the ratio of input to output), and are then scaled
from whatever size they have to the target, so every option is honoured either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Size, resize_size, scale_box
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind, Sizing, megapixels, parameters

# rokka sharpens a downsized image only "if entropy > 5" (bits per pixel of its histogram,
# 0-8 for 8-bit images): flat graphics stay crisp-edged, photographs regain detail.
SHARPEN_MIN_ENTROPY = 5.0


@dataclass(frozen=True, slots=True)
class ResizeParameters:
    """``width``/``height`` in pixels (1-10000, at least one given), ``mode`` box, fill or
    absolute; ``upscale``/``upscale_dpr`` allow enlarging; ``sharpen`` after downsizing."""

    width: int | None
    height: int | None
    mode: str
    upscale: bool
    upscale_dpr: bool
    sharpen: bool


def target_size(size: Size, options: Mapping[str, Any], dpr: float) -> Size:
    """Output size of this resize on an image of ``size`` (see geometry.resize_size)."""
    p = parameters(ResizeParameters, options)
    return resize_size(
        size,
        width=p.width,
        height=p.height,
        mode=p.mode,
        upscale=p.upscale,
        upscale_dpr=p.upscale_dpr,
        dpr=dpr,
    )


def entropy(image: pyvips.Image) -> float:
    """Shannon entropy in bits (0-8) of the image's luminance histogram."""
    colour = image[: image.bands - 1] if image.hasalpha() else image
    grey = colour.colourspace("b-w") if colour.bands >= 3 else colour
    if grey.format != "uchar":
        grey = grey.cast("uchar")
    return float(grey.hist_find().hist_entropy())


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    # A shrunk decode arrives smaller than its geometry; the target comes from the geometry.
    before = ctx.geometry(image)
    target = target_size(before, options, ctx.dpr)
    ctx.full_size = None
    if (image.width, image.height) != (target.width, target.height):
        image = scale_to(image, target, kernel=ctx.kernel)
    return _finish(image, before, options, ctx)


def scale_to(image: pyvips.Image, target: Size, *, kernel: str = "lanczos3") -> pyvips.Image:
    """``image`` resampled to exactly ``target`` pixels with libvips' ``kernel`` (Lanczos 3
    unless told; libvips widens it with the reduction, so "linear" is a triangle filter);
    colours with alpha are scaled premultiplied, so transparent pixels do not bleed their
    colour into the edges."""
    fx, fy = target.width / image.width, target.height / image.height
    if image.hasalpha():
        fmt = image.format
        image = image.premultiply().resize(fx, vscale=fy, kernel=kernel).unpremultiply().cast(fmt)
    else:
        image = image.resize(fx, vscale=fy, kernel=kernel)
    # resize rounds; pin the exact size the geometry promised.
    if (image.width, image.height) != (target.width, target.height):
        image = image.gravity("centre", target.width, target.height, extend="copy")
    return image


def _finish(
    image: pyvips.Image, before: Size, options: Mapping[str, Any], ctx: RenderContext
) -> pyvips.Image:
    """Everything of the resize after scaling: ``image`` is already the target size and
    ``before`` the full-size geometry (pixels) it was scaled from. Sharpens when ``sharpen``
    is set, the image got smaller and its entropy is above :data:`SHARPEN_MIN_ENTROPY`;
    moves the areas."""
    fx, fy = image.width / before.width, image.height / before.height
    if parameters(ResizeParameters, options).sharpen and fx < 1:
        # The entropy pass reads every pixel; keep them (the output size is within the
        # budget the plan was checked against) so encoding does not decode again.
        image = image.copy_memory()
        if entropy(image) > SHARPEN_MIN_ENTROPY:
            image = image.sharpen()
    ctx.move_areas(lambda b: scale_box(b, fx, fy))
    ctx.resized = True
    return image


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """The exact output size (see :func:`target_size`)."""
    return target_size(before, options, sizing.dpr)


def decode_shrink(
    before: Size,
    options: Mapping[str, Any],
    ctx: RenderContext,
    rest: Callable[[Size, RenderContext], float | None],
) -> float:
    """The decoder may shrink down to the target on both sides (the scaling that remains is
    this operation's own); what comes after the resize sees its output, whatever was decoded."""
    target = target_size(before, options, ctx.dpr)
    return min(before.width / target.width, before.height / target.height)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """Resampling reads and writes the larger side; sharpen (downsizing only) adds the
    entropy histogram and a sharpen of the output."""
    work = 2.0 * megapixels(max(before, after, key=lambda s: s.pixels))
    # Equal sizes count too: after a shrinking decode the resize starts at its target size.
    if parameters(ResizeParameters, options).sharpen and after.pixels <= before.pixels:
        work += 7.0 * megapixels(after)
    return work


KIND = OperationKind(
    "resize",
    apply,
    ResizeParameters,
    size=size,
    passes=passes,
    resizes=True,
    decode_shrink=decode_shrink,
)
