"""rokka ``composition``: the image and a *secondary* (an image of the organization, or a
box of one colour) on one canvas.

- ``mode: foreground`` puts the image in front of the secondary (a canvas or letterbox:
  a colour box bigger than the image); ``background`` puts the secondary in front of the
  image (a watermark).
- The secondary is ``width`` x ``height`` px (dpr-scaled after a resize). A colour box
  without them has the image's size; a secondary image without them keeps its own size,
  with them it is resized by ``resize_mode`` (``fill`` then cuts it to exactly width x
  height around its own subject area), with ``resize_to_primary`` to the image's size.
  ``secondary_opacity`` (0-100 %) scales its alpha, ``angle`` turns it clockwise.
- The canvas is the larger of image and secondary in each direction, so the result is never
  smaller than the image. ``anchor`` places each of the two on the canvas: ``left``,
  ``center``, ``right`` x ``top``, ``center``, ``bottom``, or pixels from the top-left
  (clamped so it stays on the canvas); the one that fills a direction starts at 0 in it.
  Area keywords (``auto``, ``subjectarea``, ``croparea``, ``face``) centre a smaller
  secondary on that area of the image (``auto``: subject area, crop area, face, centre);
  otherwise, and for ``smart``, they mean ``center_center``.
- ``empty_primary`` leaves the image out: the result is the secondary alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine import foreign
from engine.errors import RenderFailed
from engine.formats import parse_hex
from engine.geometry import (
    Areas,
    Box,
    Size,
    crop_box,
    parse_anchor,
    parse_areas,
    resize_size,
    rotated_size,
    scale_box,
)
from engine.operations.context import RenderContext, size_of, to_srgb
from engine.operations.kind import OperationKind, Sizing, megapixels, parameters
from engine.resources import secondary_render_key


@dataclass(frozen=True, slots=True)
class CompositionParameters:
    """``mode`` foreground or background; ``width``/``height`` px (1-10000) of the
    secondary; ``resize_mode`` box, absolute or fill; ``resize_to_primary``; ``anchor``
    (crop anchor syntax); ``secondary_color`` hex RGB and ``secondary_opacity`` percent
    (0-100); ``secondary_image`` a hash as written in the options; ``secondary_stack`` and
    ``secondary_stack_variables`` (rendered by the web layer, see docs/operations.md);
    ``angle`` degrees clockwise (-360-360); ``empty_primary``; ``cache`` (render the
    secondary stack once into the render cache, webapp/secondarycache.py)."""

    mode: str
    width: int | None
    height: int | None
    resize_mode: str
    resize_to_primary: bool
    anchor: str
    secondary_color: str
    secondary_opacity: int
    secondary_image: str | None
    secondary_stack: str | None
    secondary_stack_variables: str | None
    angle: float
    empty_primary: bool
    cache: bool


# ------------------------------------------------------------------------------- geometry


def _scaled(value: int | None, factor: float) -> int | None:
    return None if value is None else max(1, round(value * factor))


def secondary_size(
    primary: Size, natural: Size | None, p: CompositionParameters, factor: float
) -> Size:
    """Size (px) of the secondary before it is turned by ``angle``.

    ``natural`` is the secondary image's display size (None for a colour box); ``factor``
    multiplies pixel options (the dpr after a resize, else 1).
    """
    width, height = _scaled(p.width, factor), _scaled(p.height, factor)
    if natural is None:
        if p.resize_to_primary:
            return primary
        return Size(width or primary.width, height or primary.height)
    if p.resize_to_primary:
        width, height = primary.width, primary.height
    elif width is None and height is None:
        # An image without a size keeps its own, dpr-scaled like every pixel value.
        return Size(_scaled(natural.width, factor) or 1, _scaled(natural.height, factor) or 1)
    if p.resize_mode == "fill" and width is not None and height is not None:
        # Cut to the box after covering it (around the image's subject area, see _fit).
        return Size(width, height)
    return resize_size(natural, width=width, height=height, mode=p.resize_mode)


def placed_size(secondary: Size, p: CompositionParameters) -> Size:
    """The secondary's bounding box once turned by ``angle``."""
    return rotated_size(secondary, float(p.angle)) if float(p.angle) % 360 else secondary


def canvas_size(primary: Size, placed: Size, p: CompositionParameters) -> Size:
    """The result's size: the larger of image and placed secondary in each direction, or the
    secondary alone with ``empty_primary``."""
    if p.empty_primary:
        return placed
    return Size(max(primary.width, placed.width), max(primary.height, placed.height))


def _offset(extent: int, length: int, token: str, start: str, end: str, factor: float) -> int:
    """Position (px) of something ``length`` long on ``extent`` by an anchor token."""
    if token == start:
        value = 0.0
    elif token == end:
        value = float(extent - length)
    elif token == "center":
        value = (extent - length) / 2
    else:
        value = float(token) * factor
    return int(max(0, min(round(value), extent - length)))


def position(
    canvas: Size,
    size: Size,
    anchor: str,
    factor: float,
    focus: Box | None = None,
) -> tuple[int, int]:
    """Top-left (px) of an image of ``size`` on ``canvas`` by ``anchor``; a keyword anchor
    centres it on ``focus`` (a box of the canvas) or on the canvas, clamped inside."""
    parts = parse_anchor(anchor)
    if parts is None:
        cx, cy = focus.center if focus is not None else (canvas.width / 2, canvas.height / 2)
        x = max(0, min(round(cx - size.width / 2), canvas.width - size.width))
        y = max(0, min(round(cy - size.height / 2), canvas.height - size.height))
        return int(x), int(y)
    return (
        _offset(canvas.width, size.width, parts[0], "left", "right", factor),
        _offset(canvas.height, size.height, parts[1], "top", "bottom", factor),
    )


def _focus(anchor: str, areas: Areas) -> Box | None:
    """The area of the image a keyword ``anchor`` centres a watermark on."""
    if anchor == "auto":
        return areas.subject or areas.crop or areas.face
    return {"subjectarea": areas.subject, "croparea": areas.crop, "face": areas.face}.get(anchor)


def _render_key(p: CompositionParameters) -> str:
    return secondary_render_key(
        p.secondary_stack or "", p.secondary_stack_variables, p.secondary_image
    )


def _natural(p: CompositionParameters, images: Mapping[str, Size]) -> Size | None:
    """The secondary's size before sizing: the secondary stack's output, else the secondary
    image's display size; None for a colour box."""
    if p.secondary_stack is not None:
        known = images.get(_render_key(p))
        if known is None:
            raise RenderFailed(f"composition: secondary_stack {p.secondary_stack} was not provided")
        return known
    if p.secondary_image is None:
        return None
    known = images.get(p.secondary_image)
    if known is None:
        raise RenderFailed(f"composition: secondary_image {p.secondary_image} was not provided")
    return known


def size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """The canvas (see :func:`canvas_size`): exact, unless a secondary stack's own size
    depends on pixels (trim), whose prediction is an upper bound."""
    p = parameters(CompositionParameters, options)
    factor = sizing.dpr if sizing.resized else 1.0
    natural = _natural(p, sizing.images)
    return canvas_size(before, placed_size(secondary_size(before, natural, p, factor), p), p)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """Compositing reads the layers and writes the canvas (a few passes of the output); a
    turned secondary interpolates every pixel, as rotate does. Decoding and resizing a
    secondary image is counted by engine/cost.py with the reference."""
    work = 4.0 * megapixels(after)
    if float(parameters(CompositionParameters, options).angle) % 90:
        work += 30.0 * megapixels(after)
    return work


# --------------------------------------------------------------------------------- pixels


def _rgba(image: pyvips.Image) -> pyvips.Image:
    image = to_srgb(image)
    return image if image.hasalpha() else image.bandjoin(255)


def _decode(data: bytes, fmt: str, natural: Size, size: Size) -> pyvips.Image:
    """First frame of a referenced image of format ``fmt`` and display size ``natural`` at
    ``size`` (shrunk while decoding where the format allows, so a big watermark never exists
    at full size), display orientation, sRGB with alpha (thumbnail imports an embedded ICC
    profile). JPEG XL, PDF and PSD come whole from engine/foreign.py, then are resized."""
    try:
        if foreign.decodes(fmt):
            # The decode was checked against the pixel budget with the plan (engine/cost.py).
            whole = foreign.decode(data, fmt, None, max_pixels=natural.pixels)
            return _rgba(_resized(to_srgb(whole), size))
        image = pyvips.Image.thumbnail_buffer(data, size.width, height=size.height, size="force")
        return _rgba(_resized(image, size))
    except pyvips.Error as exc:
        raise RenderFailed("composition: secondary_image cannot be decoded") from exc


Scaler = Callable[[Size], pyvips.Image]
"""The secondary at a given size, px: decoded at it, or a rendered secondary resized."""


def _source(p: CompositionParameters, ctx: RenderContext) -> tuple[Scaler, Size, Areas]:
    """How to get the secondary at a size, its natural size (px) and its areas."""
    if p.secondary_stack is not None and _render_key(p) in ctx.resource_images:
        # rendered before, from the render cache (``cache: true``): an image like any other
        ref = _render_key(p)
    elif p.secondary_stack is not None:
        key = ("composition render", _render_key(p))
        if key not in ctx.memo:
            render = ctx.renders.get(key[1])
            if render is None:
                raise RenderFailed(
                    f"composition: secondary_stack {p.secondary_stack} was not provided"
                )
            # Frames of an animation share the rendered secondary: render it once.
            image, areas = render()
            ctx.memo[key] = (_rgba(image).copy_memory(), areas)
        rendered, areas = ctx.memo[key]
        return (lambda size: _resized(rendered, size)), size_of(rendered), areas
    else:
        ref = p.secondary_image or ""
    data = ctx.resources.get(ref)
    known = ctx.resource_images.get(ref)
    if data is None or known is None:
        raise RenderFailed(f"composition: secondary_image {ref} was not provided")
    natural, fmt = known.info.size, known.info.format
    scaler: Scaler = lambda size: _decode(data, fmt, natural, size)  # noqa: E731
    return scaler, natural, parse_areas(known.dynamic_metadata, natural)


def _fit(
    scaler: Scaler, natural: Size, areas: Areas, p: CompositionParameters, target: Size
) -> pyvips.Image:
    """The secondary resized to ``target`` (before opacity and angle)."""
    if p.resize_mode == "fill" and natural != target:
        # Cover the box, then cut it around the secondary's own subject area (or face),
        # as a crop with anchor auto would.
        cover = resize_size(natural, width=target.width, height=target.height, mode="fill")
        image = scaler(cover)
        fx, fy = cover.width / natural.width, cover.height / natural.height
        areas = areas.map(lambda b: scale_box(b, fx, fy))
        box = crop_box(
            cover,
            width=target.width,
            height=target.height,
            anchor="auto",
            subject=areas.subject,
            face=areas.face,
        )
        x, y, w, h = box.as_ints()
        return image.crop(x, y, w, h)
    return scaler(target)


def _resized(image: pyvips.Image, target: Size) -> pyvips.Image:
    if (image.width, image.height) == (target.width, target.height):
        return image
    out = image.resize(target.width / image.width, vscale=target.height / image.height)
    if (out.width, out.height) != (target.width, target.height):
        out = out.gravity("centre", target.width, target.height, extend="copy")
    return out


def _with_opacity(image: pyvips.Image, opacity: int) -> pyvips.Image:
    if opacity >= 100:
        return image
    alpha = (image[3] * (opacity / 100)).cast("uchar")
    return image[:3].bandjoin(alpha)


def _secondary(primary: Size, p: CompositionParameters, ctx: RenderContext) -> pyvips.Image:
    """The secondary as placed: sized, faded, turned; sRGB with alpha, in memory."""
    factor = ctx.dpr if ctx.resized else 1.0
    source = None
    natural = None
    if p.secondary_stack is not None or p.secondary_image is not None:
        source = _source(p, ctx)
        natural = source[1]
    target = secondary_size(primary, natural, p, factor)
    # Frames of an animation share the secondary: prepare it once.
    key = ("composition", p, target)
    if key in ctx.memo:
        return ctx.memo[key]
    if source is None:
        colour = parse_hex(p.secondary_color)
        image = (pyvips.Image.black(target.width, target.height) + [*colour, 255]).cast("uchar")
        image = image.copy(interpretation="srgb")
    else:
        image = _fit(*source, p, target)
    image = _with_opacity(image, int(p.secondary_opacity))
    angle = float(p.angle) % 360
    if angle % 90 == 0:
        turns = int(angle // 90)
        image = [image, image.rot90(), image.rot180(), image.rot270()][turns]
    else:
        image = image.rotate(angle, background=[0, 0, 0, 0])
    image = image.copy_memory()
    ctx.memo[key] = image
    return image


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(CompositionParameters, options)
    primary = size_of(image)
    factor = ctx.dpr if ctx.resized else 1.0
    secondary = _secondary(primary, p, ctx)
    placed = size_of(secondary)
    canvas = canvas_size(primary, placed, p)
    blank = pyvips.Image.black(canvas.width, canvas.height, bands=4).copy(interpretation="srgb")
    if p.empty_primary:
        ctx.areas = Areas()
        return blank.composite2(secondary, "over").cast("uchar")
    px, py = position(canvas, primary, p.anchor, factor)
    # A keyword anchor centres a smaller secondary on that area of the image.
    focus = _focus(p.anchor, ctx.areas)
    if focus is not None:
        focus = Box(focus.x + px, focus.y + py, focus.width, focus.height)
    sx, sy = position(canvas, placed, p.anchor, factor, focus)
    had_alpha = image.hasalpha()
    layers = [(secondary, sx, sy), (_rgba(image), px, py)]
    if p.mode == "background":
        layers.reverse()
    out = blank.composite(
        [layer for layer, _, _ in layers],
        ["over", "over"],
        x=[x for _, x, _ in layers],
        y=[y for _, _, y in layers],
    ).cast("uchar")
    if (px, py) != (0, 0):
        ctx.move_areas(lambda b: Box(b.x + px, b.y + py, b.width, b.height))
    if not had_alpha and _opaque(canvas, primary, placed, p):
        out = out[:3]
    return out


def _opaque(canvas: Size, primary: Size, placed: Size, p: CompositionParameters) -> bool:
    """Whether every canvas pixel is covered by something opaque, judged from geometry (the
    image is opaque): the image filling the canvas, or a full-opacity colour box filling it."""
    if primary == canvas:
        return True
    box = p.secondary_image is None and p.secondary_stack is None
    return box and placed == canvas and p.secondary_opacity >= 100 and float(p.angle) % 90 == 0


KIND = OperationKind("composition", apply, CompositionParameters, size=size, passes=passes)
