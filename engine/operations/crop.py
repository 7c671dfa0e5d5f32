"""rokka ``crop``: anchors, modes, scale, movearea and named multi areas (geometry.crop_box)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Box, Size, crop_box, crop_size, offset_box, parse_anchor
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind, Sizing, megapixels, parameters


@dataclass(frozen=True, slots=True)
class CropParameters:
    """``width``/``height`` in pixels (absolute; dpr-scaled after a resize) or ratio parts;
    ``anchor``/``fallback`` keywords or X_Y; ``mode`` absolute, ratio, box or area; ``scale``
    percent (0-100) of the largest box; ``movearea_x``/``_y`` pixels; ``area`` a multi area."""

    width: float
    height: float
    anchor: str
    fallback: str
    mode: str
    scale: float
    movearea_x: float
    movearea_y: float
    area: str | None


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
    p = parameters(CropParameters, options)
    width, height = _box_size(p, ctx)
    areas = ctx.areas.select(p.area)
    return crop_box(
        size,
        width=width,
        height=height,
        mode=p.mode,
        anchor=_anchor(p.anchor, ctx),
        fallback=_anchor(p.fallback, ctx),
        scale=float(p.scale),
        movearea_x=p.movearea_x,
        movearea_y=p.movearea_y,
        subject=areas.subject,
        crop_area=areas.crop,
        face=areas.face,
        smart=smart,
    )


def needs_pixels(options: Mapping[str, Any]) -> bool:
    """Whether the box depends on pixels (the ``smart`` anchor), not only on geometry."""
    p = parameters(CropParameters, options)
    return "smart" in (p.anchor, p.fallback)


def _box_size(p: CropParameters, ctx: RenderContext) -> tuple[float, float]:
    width, height = float(p.width), float(p.height)
    if p.mode == "absolute":
        return ctx.pixels(width), ctx.pixels(height)
    return width, height


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    size = ctx.geometry(image)
    smart = None
    # decode_shrink refuses smart anchors, so the pixels here are full size.
    if needs_pixels(options):
        p = parameters(CropParameters, options)
        width, height = _box_size(p, ctx)
        w, h = crop_size(size, width=width, height=height, mode=p.mode, scale=float(p.scale))
        smart = _smart_point(image, w, h)
    box = decide_box(size, options, ctx, smart=smart)
    x, y, w, h = box.as_ints()
    if ctx.full_size is not None:
        image = _cut_shrunk(image, size, (x, y, w, h))
        ctx.full_size = Size(w, h)
    elif (x, y, w, h) != (0, 0, size.width, size.height):
        image = image.crop(x, y, w, h)
    ctx.move_areas(lambda b: offset_box(b, box))
    return image


def _cut_shrunk(image: pyvips.Image, full: Size, box: tuple[int, int, int, int]) -> pyvips.Image:
    """The pixels of ``box`` (in the ``full``-size geometry) out of a shrunk ``image``."""
    x, y, w, h = box
    sx, sy = image.width / full.width, image.height / full.height
    left, top = min(int(x * sx), image.width - 1), min(int(y * sy), image.height - 1)
    cw = max(1, min(round(w * sx), image.width - left))
    ch = max(1, min(round(h * sy), image.height - top))
    return image.crop(left, top, cw, ch)


def decode_shrink(
    before: Size,
    options: Mapping[str, Any],
    ctx: RenderContext,
    rest: Callable[[Size, RenderContext], float | None],
) -> float | None:
    """A cut by geometry alone passes on what the operations after it allow for its box
    (the areas moved as the cut moves them); a smart anchor needs the full-size pixels."""
    if needs_pixels(options):
        return None
    box = decide_box(before, options, ctx)
    _, _, w, h = box.as_ints()
    after = RenderContext(
        areas=ctx.areas.map(lambda b: offset_box(b, box)), dpr=ctx.dpr, resized=ctx.resized
    )
    return rest(Size(w, h), after)


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """Exact for modes absolute and ratio; box and area depend on the areas and never
    enlarge, so ``before`` is their upper bound."""
    p = parameters(CropParameters, options)
    if p.mode not in ("absolute", "ratio"):
        return before
    factor = sizing.dpr if sizing.resized and p.mode == "absolute" else 1.0
    w, h = crop_size(
        before,
        width=float(p.width) * factor,
        height=float(p.height) * factor,
        mode=p.mode,
        scale=float(p.scale),
    )
    return Size(w, h)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """A plain cut copies the output; smart and area-driven crops analyse the input."""
    p = parameters(CropParameters, options)
    smart = p.anchor == "smart" or p.mode in ("box", "area")
    return 3.0 * megapixels(before) if smart else 0.2 * megapixels(after)


KIND = OperationKind(
    "crop", apply, CropParameters, size=size, passes=passes, decode_shrink=decode_shrink
)
