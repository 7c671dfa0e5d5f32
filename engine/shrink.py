"""Shrink-on-load: how small the decoder may hand over the source, and nothing else.

The leading operations of a plan decide it through their kind's ``decode_shrink`` rule
(engine/operations/kind.py): a resize allows the ratio of its input to its output, a
geometric crop passes on what the operations after it allow for its box. Here that ratio
becomes loader options per format; the load step then decodes with them and every
operation still runs (engine/pipeline.py), and the cost model reads the same decision
(engine/cost.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.geometry import Size
from engine.operations import KINDS
from engine.operations.context import RenderContext

if TYPE_CHECKING:
    from stacks.plan import Operation

# JPEG decoders scale by 1/2, 1/4 or 1/8 in the DCT domain, almost for free.
JPEG_SHRINKS = (8, 4, 2)
# Formats whose loader renders or decodes at any scale (``scale`` option): SVG both ways,
# WebP only smaller.
_SCALABLE = {"svg": True, "webp": False}


def allowed_ratio(ops: Sequence[Operation], size: Size, ctx: RenderContext) -> float | None:
    """How many times smaller per side (pixels of a source of display ``size``) the source
    may be decoded for ``ops``, the enabled operations; below 1 a vector source may be
    rasterised larger. None when the first operations give the decoder no say (the chain
    of operations with a ``decode_shrink`` rule does not reach one that allows a ratio).
    """

    def rest(index: int, before: Size, at: RenderContext) -> float | None:
        if index >= len(ops):
            return None
        kind = KINDS.get(ops[index].name)
        if kind is None or kind.decode_shrink is None:
            return None
        return kind.decode_shrink(
            before, ops[index].options, at, lambda s, after: rest(index + 1, s, after)
        )

    return rest(0, size, ctx)


def jpeg_shrink(ratio: float) -> int:
    """The largest DCT shrink (8, 4, 2, else 1) that keeps at least the pixels ``ratio``
    allows: the decoder never hands over fewer pixels than the next step needs."""
    return next((s for s in JPEG_SHRINKS if ratio >= s), 1)


def loader_options(fmt: str, ratio: float | None) -> dict[str, Any]:
    """libvips loader options that decode a source of format ``fmt`` as small as
    ``ratio`` allows (see :func:`allowed_ratio`); ``{}`` for full size."""
    if ratio is None:
        return {}
    if fmt == "jpg":
        shrink = jpeg_shrink(ratio)
        return {"shrink": shrink} if shrink > 1 else {}
    if fmt in _SCALABLE and (ratio > 1 or (_SCALABLE[fmt] and ratio < 1)):
        return {"scale": 1 / ratio}
    return {}


def decoded_size(fmt: str, size: Size, ratio: float | None) -> Size:
    """The size (pixels) the decoder hands over for a source of ``size`` (estimate for the
    cost model: libvips rounds the scaled sizes itself)."""
    options = loader_options(fmt, ratio)
    if "shrink" in options:
        s = options["shrink"]
        return Size(-(-size.width // s), -(-size.height // s))
    if "scale" in options:
        scale = options["scale"]
        return Size(max(1, round(size.width * scale)), max(1, round(size.height * scale)))
    return size
