"""rokka ``text``: write text in an uploaded font onto the image.

The text is laid out by libvips (Pango) as a coverage mask, in a *block*:

- without ``width`` the block is the text's ink, on one line;
- with ``width`` the text wraps at that many pixels and ``align`` (left, centre, right)
  places each line inside a block ``width`` wide;
- with ``height`` the block is ``height`` tall: the text is centred vertically in it when
  it fits and cut off below otherwise; with ``width``, ``height`` and ``resize_to_box``
  the font size is chosen so the whole text fills that box instead (longer text, smaller
  letters).

The block is turned ``angle`` degrees clockwise, placed by ``anchor`` (the crop anchor
grammar: ``X_Y`` pixels of its top-left corner, left/center/right x top/center/bottom, or
an area keyword, which centres it on that area) and painted in ``color`` at ``opacity``.
The image keeps its size; text outside it is cut off. Pixel-valued options (size, width,
height, spacing, pixel anchors) are multiplied by the stack's dpr after a resize.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.errors import UnsupportedFont
from engine.fonts import installed_font
from engine.formats import parse_hex
from engine.geometry import Box, Size, parse_anchor
from engine.operations import crop
from engine.operations.context import RenderContext, join_alpha, size_of, split_alpha, to_srgb
from engine.operations.kind import OperationKind, megapixels, parameters

# rokka's align values -> libvips' (Pango's) names.
_ALIGN = {"left": "low", "centre": "centre", "right": "high"}
# Sizes are pixels: at 72 dpi one Pango point is one pixel.
_DPI = 72


@dataclass(frozen=True, slots=True)
class TextParameters:
    """``font`` the hash of an uploaded font; ``text`` what to write; ``size`` the font size
    in pixels; ``color`` hex RGB; ``opacity`` percent (0-100); ``angle`` degrees clockwise;
    ``anchor`` crop anchor grammar; ``width`` wrap width and ``height`` box height in
    pixels (None: unbounded); ``spacing`` extra pixels between lines; ``align`` left,
    centre or right; ``resize_to_box`` fit the font size to ``width`` x ``height``."""

    font: str
    text: str
    size: float
    color: str
    opacity: float
    angle: float
    anchor: str
    width: int | None
    height: int | None
    spacing: int
    align: str
    resize_to_box: bool


def escape_markup(text: str) -> str:
    """``text`` as literal Pango markup: libvips reads markup, and user text must not
    choose fonts or sizes through ``<span>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _font_bytes(ref: str, ctx: RenderContext) -> bytes:
    data = ctx.resources.get(ref)
    if data is None:
        raise UnsupportedFont(f"font {ref} is not available to this render")
    return data


def text_block(p: TextParameters, font: bytes, ctx: RenderContext) -> pyvips.Image:
    """The block (see the module docstring) as a one-band 8-bit coverage mask (255 = ink)."""
    size = ctx.pixels(float(p.size))
    width = round(ctx.pixels(p.width)) if p.width else None
    height = round(ctx.pixels(p.height)) if p.height else None
    fit = bool(p.resize_to_box and width and height)
    options: dict[str, Any] = {
        "align": _ALIGN[p.align],
        "spacing": round(ctx.pixels(p.spacing)),
        "wrap": "word-char",  # a word longer than the width is broken, not overflowing
    }
    if width:
        options["width"] = width
    if fit:
        options["height"] = height  # with height and no dpi, libvips searches the size
    else:
        options["dpi"] = _DPI
    with installed_font(font) as (path, family):
        # No font fallback: a character the font lacks is drawn as Pango's "missing glyph"
        # box, never in another font; the other fonts this process knows include other
        # organizations' uploads.
        markup = f'<span fallback="false">{escape_markup(p.text)}</span>'
        mask = pyvips.Image.text(markup, font=f"{family}, {size:.2f}", fontfile=path, **options)
        # Render now, while the font file exists (pyvips images are lazy).
        mask = mask.copy_memory()
    # libvips crops the mask to the ink; xoffset is where the ink starts in a line
    # ``width`` wide, which is what places the lines of an aligned block.
    block_width = width or mask.width
    left = mask.xoffset if width else 0
    block_height = height or mask.height
    top = max(0, (block_height - mask.height) // 2) if height else 0
    return mask.embed(left, top, block_width, block_height)


def _turned(block: pyvips.Image, angle: float) -> pyvips.Image:
    angle %= 360
    if angle == 0:
        return block
    if angle % 90 == 0:
        return getattr(block, {90: "rot90", 180: "rot180", 270: "rot270"}[int(angle)])()
    return block.rotate(angle)


def _offset(extent: int, length: int, token: str, start: str, end: str, ctx: RenderContext) -> int:
    if token == start:
        return 0
    if token == end:
        return extent - length
    if token == "center":
        return (extent - length) // 2
    return round(ctx.pixels(int(token)))


def _focus(anchor: str, image: pyvips.Image, block: Size, ctx: RenderContext) -> Box | None:
    """The area an area keyword centres the block on (None: there is none)."""
    areas = ctx.areas
    if anchor == "auto":
        return areas.subject or areas.crop or areas.face
    if anchor == "smart":
        w, h = min(block.width, image.width), min(block.height, image.height)
        return crop.smart_point(image, w, h)
    return {"subjectarea": areas.subject, "croparea": areas.crop, "face": areas.face}.get(anchor)


def place(image: pyvips.Image, block: Size, anchor: str, ctx: RenderContext) -> tuple[int, int]:
    """Top-left corner (pixels, may be negative or past the edge) of ``block`` on ``image``.

    ``X_Y`` pixel tokens are the corner itself; keywords align an edge or the centre; an
    area keyword centres the block on the area, kept inside the image where it fits, and
    centres it on the image when the area is missing.
    """
    canvas = size_of(image)
    parts = parse_anchor(anchor)
    if parts is not None:
        x = _offset(canvas.width, block.width, parts[0], "left", "right", ctx)
        y = _offset(canvas.height, block.height, parts[1], "top", "bottom", ctx)
        return x, y
    focus = _focus(anchor, image, block, ctx)
    if focus is None:
        return (canvas.width - block.width) // 2, (canvas.height - block.height) // 2
    cx, cy = focus.center
    return (
        _inside(round(cx - block.width / 2), block.width, canvas.width),
        _inside(round(cy - block.height / 2), block.height, canvas.height),
    )


def _inside(start: int, length: int, extent: int) -> int:
    if length >= extent:
        return (extent - length) // 2
    return max(0, min(start, extent - length))


def paint(
    image: pyvips.Image, mask: pyvips.Image, x: int, y: int, color: str, opacity: float
) -> pyvips.Image:
    """``image`` with ``color`` (hex RGB) painted through ``mask`` (coverage 0-255) at
    ``opacity`` percent, the mask's top-left corner at (``x``, ``y``); same size and bands."""
    image = to_srgb(image)
    colour, alpha = split_alpha(image)
    ink = (mask * (float(opacity) / 100)).cast("uchar")
    overlay = mask.new_from_image(parse_hex(color)).cast("uchar").bandjoin(ink)
    overlay = overlay.copy(interpretation="srgb")
    base = join_alpha(colour, alpha if alpha is not None else (colour[0] * 0 + 255).cast("uchar"))
    out = base.composite2(overlay, "over", x=x, y=y).cast("uchar")
    out = out.crop(0, 0, image.width, image.height)
    return out if alpha is not None else out[:3]


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(TextParameters, options)
    if not p.text.strip():
        return image  # nothing to write (Pango refuses an empty layout)
    # Every frame of an animation gets the same block: lay it out once (ctx.memo is shared
    # by the frames; the key holds everything the block depends on).
    key = ("text", p, ctx.pixels(1.0))
    block = ctx.memo.get(key)
    if block is None:
        block = _turned(text_block(p, _font_bytes(p.font, ctx), ctx), float(p.angle))
        ctx.memo[key] = block
    x, y = place(image, size_of(block), p.anchor, ctx)
    return paint(image, block, x, y, p.color, float(p.opacity))


def mask_pixels(options: Mapping[str, Any]) -> float:
    """An estimate (pixels) of the text mask before cutting: a box fitted text fills its
    box; otherwise each character counts one em square (``size`` squared)."""
    p = parameters(TextParameters, options)
    if p.resize_to_box and p.width and p.height:
        return float(p.width * p.height)
    return len(p.text) * float(p.size) ** 2


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """Compositing passes over the image; laying out and rasterising the text; turning
    the mask by a free angle interpolates every pixel (~30 passes, as ``rotate``)."""
    text = mask_pixels(options) / 1_000_000
    work = 2.0 * megapixels(after) + 4.0 * text
    if float(parameters(TextParameters, options).angle) % 90:
        work += 30.0 * 2 * text  # the turned mask's bounding box is up to twice as big
    return work


KIND = OperationKind("text", apply, TextParameters, passes=passes)
