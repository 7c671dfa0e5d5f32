"""render(): one RenderPlan + source bytes -> encoded image.

Phases: check geometry (before any pixel) -> load (as small as the leading operations allow,
see engine/shrink.py; EXIF autorotation; sRGB working space) -> every operation in order,
carrying the areas -> finalize to 8-bit sRGB -> encode. Animated input to an animated format
runs the operations per frame; to a still format only the first frame is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyvips

from engine.cost import Budget, Cost, check, estimate
from engine.errors import (
    EngineError,
    RenderFailed,
    TooManyPixels,
    UnsupportedImage,
    UnsupportedOperation,
)
from engine.formats import Format, encode, format_for, has_visible_alpha, to_output_pixels
from engine.geometry import parse_areas
from engine.operations import KINDS, RenderContext
from engine.operations.context import to_srgb
from engine.probe import ImageInfo, inspect
from engine.shrink import allowed_ratio, loader_options

if TYPE_CHECKING:
    from stacks.plan import Operation, RenderPlan


@dataclass(frozen=True, slots=True)
class Rendered:
    """An encoded output; ``width``/``height`` in pixels (one frame for animations)."""

    body: bytes
    mimetype: str
    ext: str
    width: int
    height: int


def plan_cost(plan: RenderPlan, info: ImageInfo, budget: Budget | None = None) -> Cost:
    """The cost of ``plan`` on the source ``info`` describes, checked against ``budget``.

    Raises ``OverBudget`` (400) past any limit and ``UnsupportedOperation`` (400) for an
    operation the engine cannot render; touches no pixel, so it answers in microseconds.
    """
    for op in plan.operations:
        if op.enabled and op.name not in KINDS:
            raise UnsupportedOperation(f"operation {op.name} is not supported")
    fmt = format_for(plan.output_format)
    cost = estimate(plan, info, animate=info.animated and fmt.supports_animation)
    check(cost, budget or Budget())
    return cost


def render(
    plan: RenderPlan,
    source: bytes,
    *,
    dynamic_metadata: Mapping[str, Any] | None = None,
    info: ImageInfo | None = None,
    budget: Budget | None = None,
) -> Rendered:
    """Render ``source`` (original file bytes) through ``plan``.

    ``dynamic_metadata`` is the source image's rokka dynamic metadata (subject_area,
    crop_area, multi_areas, detection_face), in display coordinates. ``info`` is the stored
    probe result; without it the header is read again. The plan is checked against
    ``budget`` (see ``plan_cost``) before any pixel is decoded. Raises EngineError subclasses.
    """
    fmt = format_for(plan.output_format)
    ops = [op for op in plan.operations if op.enabled]
    source, info = _edited_source(source, info, ops)
    plan_cost(plan, info, budget)
    ctx = RenderContext(
        areas=parse_areas(dynamic_metadata, info.size),
        dpr=float(plan.options.get("dpr") or 1.0),
    )
    animate = info.animated and fmt.supports_animation
    try:
        image = _load(source, info, ops, ctx, animate=animate)
        image = _run_frames(image, ops, ctx) if animate else _run(image, ops, ctx)
        fmt, image = _alpha_format(fmt, image, plan.options)
        image = to_output_pixels(image, fmt, plan.options)
        body = encode(image, fmt, plan.options)
    except EngineError:
        raise
    except pyvips.Error as exc:
        raise RenderFailed(f"rendering failed: {str(exc).splitlines()[0]}") from exc
    return _rendered(body, fmt, image)


def _edited_source(
    source: bytes, info: ImageInfo | None, ops: Sequence[Operation]
) -> tuple[bytes, ImageInfo]:
    """The source after the operations that change the file itself (svgdynamic), and what
    it is; an edited file's header is read again, since an edit may change its size."""
    edits = [(KINDS[op.name].edit_source, op) for op in ops if op.name in KINDS]
    edits = [(edit, op) for edit, op in edits if edit is not None]
    if not edits:
        return source, info or inspect(source)
    for edit, op in edits:
        source = edit(source, op.options)
    try:
        return source, inspect(source)
    except (UnsupportedImage, TooManyPixels) as exc:
        raise UnsupportedOperation(f"the changed source cannot be rendered: {exc}") from exc


def _alpha_format(
    fmt: Format, image: pyvips.Image, options: Mapping[str, Any]
) -> tuple[Format, pyvips.Image]:
    """JPEG becomes the format ``jpg.transparency.autoformat`` resolved to (the caller puts
    ``png``/``webp`` there from the Accept header) when the pixels have visible alpha."""
    target = str(options.get("jpg.transparency.autoformat"))
    if fmt.ext != "jpg" or target not in ("png", "webp") or not image.hasalpha():
        return fmt, image
    # Reading the alpha runs the whole pipeline; keep the result so encoding does not run
    # it again (the output is within the pixel budget the plan was checked against).
    image = image.copy_memory()
    return (format_for(target) if has_visible_alpha(image) else fmt), image


def _load(
    source: bytes, info: ImageInfo, ops: list[Operation], ctx: RenderContext, *, animate: bool
) -> pyvips.Image:
    """Decode in display orientation and sRGB, as small as the leading operations allow.

    Shrink-on-load only chooses the decode's size (engine/shrink.py): a leading resize, or
    a geometric crop followed by one, lets a 24 MP JPEG be decoded at 1/8 when the output is
    small. Every operation then runs on the result; while it is smaller than its geometry,
    ``ctx.full_size`` says so.
    """
    ratio = allowed_ratio(ops, info.size, ctx)
    load = loader_options(info.format, ratio)
    if ratio is not None:
        # The leading steps read top to bottom (as libvips' thumbnail does): stream the decode.
        load["access"] = "sequential"
    if animate:
        load["n"] = -1
    image = _decode(source, **load)
    if (image.width, _page_height(image)) != (info.width, info.height):
        ctx.full_size = info.size
    return image


def _decode(source: bytes, **load: Any) -> pyvips.Image:
    """The whole image in display orientation, converted to sRGB through its ICC profile."""
    image = pyvips.Image.new_from_buffer(source, "", **load)
    if load.get("access") == "sequential" and image.get_typeof("orientation") != 0:
        if int(image.get("orientation")) not in (0, 1):
            # Turning reads out of order; keep the (shrunk) decode, as libvips' thumbnail does.
            image = image.copy_memory()
    image = image.autorot()
    if image.get_typeof("icc-profile-data") != 0:
        try:
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        except pyvips.Error:
            pass  # a broken profile: fall back to the interpretation libvips guessed
    return to_srgb(image)


def _run(image: pyvips.Image, ops: Sequence[Operation], ctx: RenderContext) -> pyvips.Image:
    for op in ops:
        image = KINDS[op.name].apply(image, op.options, ctx)
    return image


def _run_frames(image: pyvips.Image, ops: Sequence[Operation], ctx: RenderContext) -> pyvips.Image:
    """Run ``ops`` on every frame of a vertical strip and rebuild the strip."""
    page_height = _page_height(image)
    n = image.height // page_height
    frames = []
    first_ctx = ctx
    for i in range(n):
        frame_ctx = RenderContext(
            areas=ctx.areas, dpr=ctx.dpr, resized=ctx.resized, full_size=ctx.full_size
        )
        frame = _run(image.crop(0, i * page_height, image.width, page_height), ops, frame_ctx)
        if frames and (frame.width, frame.height) != (frames[0].width, frames[0].height):
            # Pixel-dependent ops (trim, smart crop) may differ per frame; keep frame 0's size.
            frame = frame.gravity("centre", frames[0].width, frames[0].height)
        if i == 0:
            first_ctx = frame_ctx
        frames.append(frame)
    ctx.areas = first_ctx.areas
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    for name in ("delay", "loop", "gif-loop"):
        if image.get_typeof(name) != 0:
            strip.set_type(image.get_typeof(name), name, image.get(name))
    return strip


def _page_height(image: pyvips.Image) -> int:
    if image.get_typeof("page-height") != 0:
        height = int(image.get("page-height"))
        if 0 < height <= image.height and image.height % height == 0:
            return height
    return image.height


def _rendered(body: bytes, fmt: Format, image: pyvips.Image) -> Rendered:
    return Rendered(
        body=body,
        mimetype=fmt.mime,
        ext=fmt.ext,
        width=image.width,
        height=_page_height(image),
    )
