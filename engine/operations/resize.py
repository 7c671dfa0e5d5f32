"""rokka ``resize``: box, fill or absolute, with upscale, upscale_dpr and the stack dpr."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.geometry import Size, resize_size, scale_box
from engine.operations.context import RenderContext, size_of


def target_size(size: Size, options: Mapping[str, Any], dpr: float) -> Size:
    """Output size of this resize on an image of ``size`` (see geometry.resize_size)."""
    return resize_size(
        size,
        width=options.get("width"),
        height=options.get("height"),
        mode=options.get("mode") or "box",
        upscale=options.get("upscale", True) is not False,
        upscale_dpr=options.get("upscale_dpr", True) is not False,
        dpr=dpr,
    )


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    before = size_of(image)
    target = target_size(before, options, ctx.dpr)
    fx, fy = target.width / before.width, target.height / before.height
    if (fx, fy) != (1.0, 1.0):
        image = image.resize(fx, vscale=fy)
        # resize rounds; pin the exact size the geometry promised.
        if (image.width, image.height) != (target.width, target.height):
            image = image.gravity("centre", target.width, target.height, extend="copy")
    if options.get("sharpen") and fx < 1:
        # rokka sharpens downsized images "if entropy > 5"; cropstack always sharpens then.
        image = image.sharpen()
    ctx.move_areas(lambda b: scale_box(b, fx, fy))
    ctx.resized = True
    return image
