"""rokka ``crop``: anchors, modes, scale, movearea and named multi areas (geometry.crop_box)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.geometry import Box, Size, crop_box, crop_size, offset_box, parse_anchor
from engine.operations.context import RenderContext, size_of
from engine.operations.kind import OperationKind, Sizing, megapixels


def _anchor(anchor: str, ctx: RenderContext) -> str:
    parts = parse_anchor(anchor)
    if parts is None:
        return anchor
    return "_".join(p if not p.isdigit() else str(round(ctx.pixels(int(p)))) for p in parts)


def _smart_point(image: pyvips.Image, width: int, height: int) -> Box:
    # libvips reports where attention peaked; crop_box centres on it like on an area.
    _, found = image.smartcrop(
        width, height, interesting="attention", attention_x=True, attention_y=True
    )
    return Box(found["attention_x"], found["attention_y"], 1, 1)


def decide_box(
    size: Size, options: Mapping[str, Any], ctx: RenderContext, *, smart: Box | None = None
) -> Box:
    """The box (pixels of an image of ``size``) this crop cuts, from its options and areas.

    Pure geometry; ``smart`` is the attention point when the anchor is ``smart``.
    """
    mode = options.get("mode") or "absolute"
    width, height = float(options["width"]), float(options["height"])
    if mode == "absolute":
        width, height = ctx.pixels(width), ctx.pixels(height)
    areas = ctx.areas.select(options.get("area"))
    return crop_box(
        size,
        width=width,
        height=height,
        mode=mode,
        anchor=_anchor(options.get("anchor") or "auto", ctx),
        fallback=_anchor(options.get("fallback") or "center_center", ctx),
        scale=_scale(options),
        movearea_x=options.get("movearea_x"),
        movearea_y=options.get("movearea_y"),
        subject=areas.subject,
        crop_area=areas.crop,
        face=areas.face,
        smart=smart,
    )


def needs_pixels(options: Mapping[str, Any]) -> bool:
    """Whether the box depends on pixels (the ``smart`` anchor), not only on geometry."""
    return "smart" in (options.get("anchor"), options.get("fallback"))


def _scale(options: Mapping[str, Any]) -> float:
    return float(options.get("scale") if options.get("scale") is not None else 100)


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    size = size_of(image)
    smart = None
    if needs_pixels(options):
        mode = options.get("mode") or "absolute"
        width, height = float(options["width"]), float(options["height"])
        if mode == "absolute":
            width, height = ctx.pixels(width), ctx.pixels(height)
        w, h = crop_size(size, width=width, height=height, mode=mode, scale=_scale(options))
        smart = _smart_point(image, w, h)
    box = decide_box(size, options, ctx, smart=smart)
    x, y, w, h = box.as_ints()
    if (x, y, w, h) != (0, 0, size.width, size.height):
        image = image.crop(x, y, w, h)
    ctx.move_areas(lambda b: offset_box(b, box))
    return image


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """Exact for modes absolute and ratio; box and area depend on the areas and never
    enlarge, so ``before`` is their upper bound."""
    mode = options.get("mode") or "absolute"
    if mode not in ("absolute", "ratio"):
        return before
    factor = sizing.dpr if sizing.resized and mode == "absolute" else 1.0
    scale = options.get("scale")
    w, h = crop_size(
        before,
        width=float(options["width"]) * factor,
        height=float(options["height"]) * factor,
        mode=mode,
        scale=float(100 if scale is None else scale),
    )
    return Size(w, h)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """A plain cut copies the output; smart and area-driven crops analyse the input."""
    smart = options.get("anchor") == "smart" or options.get("mode") in ("box", "area")
    return 3.0 * megapixels(before) if smart else 0.2 * megapixels(after)


KIND = OperationKind("crop", apply, size=size, passes=passes)
