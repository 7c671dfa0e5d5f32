"""render(): one RenderPlan + source bytes -> encoded image.

Phases: check geometry (before any pixel) -> load (shrink-on-load when the plan starts with
a resize; EXIF autorotation; sRGB working space) -> operations in order, carrying the areas
-> finalize to 8-bit sRGB -> encode. Animated input to an animated format runs the
operations per frame; to a still format only the first frame is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyvips

from engine import foreign
from engine.cost import Budget, Cost, Step, check, estimate
from engine.errors import EngineError, RenderFailed, UnsupportedOperation
from engine.formats import Format, encode, format_for, has_visible_alpha, to_output_pixels
from engine.geometry import Areas, Size, offset_box, parse_areas
from engine.operations import KINDS, RenderContext, crop, resize
from engine.operations.context import to_srgb
from engine.probe import ImageInfo, inspect
from engine.resources import Resource, ResourceImage, SecondaryRender, image_infos

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


def plan_cost(
    plan: RenderPlan,
    info: ImageInfo,
    budget: Budget | None = None,
    *,
    images: Mapping[str, ImageInfo] | None = None,
    renders: Mapping[str, SecondaryRender] | None = None,
) -> Cost:
    """The cost of ``plan`` on the source ``info`` describes, checked against ``budget``;
    ``images`` describes the images the plan references by hash, ``renders`` the stored
    stacks it renders secondaries through (engine/resources.py): their steps and work are
    part of this render's.

    Raises ``OverBudget`` (400) past any limit and ``UnsupportedOperation`` (400) for an
    operation the engine cannot render; touches no pixel, so it answers in microseconds.
    """
    images = images or {}
    for p in (plan, *(sub.plan for sub in (renders or {}).values())):
        for op in p.operations:
            if op.enabled and op.name not in KINDS:
                raise UnsupportedOperation(f"operation {op.name} is not supported")
    nested_steps: list[Step] = []
    nested_work = 0.0
    rendered = {}
    for key, sub in (renders or {}).items():
        # A secondary is rendered as a still, once, whatever the main render's frames.
        source = _still(info if sub.source is None else images[sub.source])
        nested = estimate(sub.plan, source, animate=False, images=images)
        rendered[key] = nested.output
        nested_steps += [Step(f"secondary stack: {s.name}", s.size) for s in nested.steps]
        nested_work += nested.work
    fmt = format_for(plan.output_format)
    animate = info.animated and fmt.supports_animation
    cost = estimate(plan, info, animate=animate, images=images, rendered=rendered)
    if nested_steps:
        cost = Cost(
            steps=(cost.steps[0], *nested_steps, *cost.steps[1:]),
            frames=cost.frames,
            work=cost.work + nested_work,
        )
    check(cost, budget or Budget())
    return cost


def _still(info: ImageInfo) -> ImageInfo:
    return replace(info, animated=False, n_pages=1)


def render(
    plan: RenderPlan,
    source: bytes,
    *,
    dynamic_metadata: Mapping[str, Any] | None = None,
    info: ImageInfo | None = None,
    budget: Budget | None = None,
    resources: Mapping[str, Resource] | None = None,
    renders: Mapping[str, SecondaryRender] | None = None,
) -> Rendered:
    """Render ``source`` (original file bytes) through ``plan``.

    ``dynamic_metadata`` is the source image's rokka dynamic metadata (subject_area,
    crop_area, multi_areas, detection_face), in display coordinates. ``info`` is the stored
    probe result; without it the header is read again. ``resources`` holds every source
    the plan names by hash (``plan.source_references()``; key: the hash as written), and of
    those its ``renders`` need; ``renders`` the stored stacks secondaries are rendered
    through (key: ``secondary_render_key``). The plan is checked against ``budget`` (see
    ``plan_cost``) before any pixel is decoded. Raises EngineError subclasses.
    """
    fmt = format_for(plan.output_format)
    info = info or inspect(source)
    if info.format == "pdf" and (plan.options.get("pdf.page") or plan.options.get("pdf.dpi")):
        # another page or resolution than the stored size: check the budgets on its size
        page = foreign.header(source, "pdf", plan.options)
        info = replace(info, width=page.width, height=page.height)
    resources = resources or {}
    renders = renders or {}
    for p in (plan, *(sub.plan for sub in renders.values())):
        for ref in p.source_references():
            given = resources.get(ref.hash)
            if given is None or (ref.image and given.info is None):
                raise RenderFailed(
                    f"operation {ref.operation}: {ref.parameter} {ref.hash} was not provided"
                )
    for sub in renders.values():
        if sub.source is not None and (
            sub.source not in resources or resources[sub.source].info is None
        ):
            raise RenderFailed(f"secondary stack image {sub.source} was not provided")
    plan_cost(plan, info, budget, images=image_infos(resources), renders=renders)
    ops = [op for op in plan.operations if op.enabled]
    ctx = RenderContext(
        areas=parse_areas(dynamic_metadata, info.size),
        dpr=float(plan.options.get("dpr") or 1.0),
        resources={key: r.data for key, r in resources.items()},
        resource_images={
            key: ResourceImage(r.info, r.dynamic_metadata)
            for key, r in resources.items()
            if r.info is not None
        },
    )
    primary = Resource(source, info, dynamic_metadata)
    limit = (budget or Budget()).max_pixels
    ctx.renders = {
        key: _secondary(sub, primary, resources, ctx, limit) for key, sub in renders.items()
    }
    animate = info.animated and fmt.supports_animation
    try:
        if foreign.decodes(info.format):
            # whole-image decoders: no shrink on load; every operation runs on the result
            image = to_srgb(foreign.decode(source, info.format, plan.options, max_pixels=limit))
        else:
            image, ops = _load(source, info, ops, ctx, animate=animate)
        image = _run_frames(image, ops, ctx) if animate else _run(image, ops, ctx)
        fmt, image = _alpha_format(fmt, image, plan.options)
        image = to_output_pixels(image, fmt, plan.options)
        body = encode(image, fmt, plan.options)
    except EngineError:
        raise
    except pyvips.Error as exc:
        raise RenderFailed(f"rendering failed: {str(exc).splitlines()[0]}") from exc
    return _rendered(body, fmt, image)


def _secondary(
    sub: SecondaryRender,
    primary: Resource,
    resources: Mapping[str, Resource],
    ctx: RenderContext,
    max_pixels: int,
) -> Callable[[], tuple[pyvips.Image, Areas]]:
    """How to render ``sub`` when an operation asks: its source decoded (shrunk where its
    plan allows; ``max_pixels`` bounds a whole-image decoder) and its operations run, as a
    still, areas carried along."""

    def run() -> tuple[pyvips.Image, Areas]:
        src = primary if sub.source is None else resources[sub.source]
        assert src.info is not None  # checked by render()
        info = _still(src.info)
        sub_ctx = replace(
            ctx,
            areas=parse_areas(src.dynamic_metadata, info.size),
            dpr=float(sub.plan.options.get("dpr") or 1.0),
            resized=False,
            renders={},  # a secondary stack renders no secondary stack itself
        )
        ops = [op for op in sub.plan.operations if op.enabled]
        if foreign.decodes(info.format):
            pixels = foreign.decode(src.data, info.format, sub.plan.options, max_pixels=max_pixels)
            image = to_srgb(pixels)
        else:
            image, ops = _load(src.data, info, ops, sub_ctx, animate=False)
        return _run(image, ops, sub_ctx), sub_ctx.areas

    return run


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
) -> tuple[pyvips.Image, list[Operation]]:
    """Decode in display orientation and sRGB, shrinking while decoding where the plan allows.

    Work is decided in source coordinates first: a leading resize, or a leading crop
    followed by a downsizing resize, tells how small the image may be decoded, so a 24 MP
    JPEG never exists at full size when the output is small. Returns the image and the
    operations still to run.
    """
    pages = {"option_string": "n=-1"} if animate else {}
    if ops and ops[0].name == "resize":
        # thumbnail_buffer shrinks while decoding (JPEG DCT scaling, WebP/SVG/HEIF at the
        # target scale), autorotates and imports the ICC profile.
        target = resize.target_size(info.size, ops[0].options, ctx.dpr)
        image = pyvips.Image.thumbnail_buffer(
            source, target.width, height=target.height, size="force", **pages
        )
        # The scaling is done; the rest of the resize step (sharpen, areas) runs as usual.
        return resize.finish(to_srgb(image), info.size, ops[0].options, ctx), ops[1:]
    shrunk = None if animate else _crop_then_resize(source, info, ops, ctx)
    if shrunk is not None:
        return shrunk, ops[2:]
    return _decode(source, **({"n": -1} if animate else {})), ops


def _decode(source: bytes, **load: Any) -> pyvips.Image:
    """The whole image in display orientation, converted to sRGB through its ICC profile."""
    image = pyvips.Image.new_from_buffer(source, "", **load).autorot()
    if image.get_typeof("icc-profile-data") != 0:
        try:
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        except pyvips.Error:
            pass  # a broken profile: fall back to the interpretation libvips guessed
    return to_srgb(image)


# JPEG decoders scale by 1/2, 1/4 or 1/8 in the DCT domain, almost for free.
_JPEG_SHRINKS = (8, 4, 2)


def _crop_then_resize(
    source: bytes, info: ImageInfo, ops: list[Operation], ctx: RenderContext
) -> pyvips.Image | None:
    """A leading geometric crop and the downsizing resize after it, on a JPEG shrunk on load.

    The crop box and the resize target are computed on the full-size geometry (so the
    output is the one the unshrunk path gives), then the JPEG is decoded at the largest
    1/2^n scale that still leaves at least the target's pixels inside the box. None when
    the plan or the format does not allow it (the caller decodes at full size).
    """
    if (
        info.format != "jpg"
        or len(ops) < 2
        or ops[0].name != "crop"
        or ops[1].name != "resize"
        or crop.needs_pixels(ops[0].options)
    ):
        return None
    box = crop.decide_box(info.size, ops[0].options, ctx)
    x, y, w, h = box.as_ints()
    target = resize.target_size(Size(w, h), ops[1].options, ctx.dpr)
    shrink = next((s for s in _JPEG_SHRINKS if w >= target.width * s and h >= target.height * s), 1)
    if shrink == 1:
        return None
    image = _decode(source, shrink=shrink)
    sx, sy = image.width / info.width, image.height / info.height
    left, top = min(int(x * sx), image.width - 1), min(int(y * sy), image.height - 1)
    cw = max(1, min(round(w * sx), image.width - left))
    ch = max(1, min(round(h * sy), image.height - top))
    image = image.crop(left, top, cw, ch).resize(target.width / cw, vscale=target.height / ch)
    if (image.width, image.height) != (target.width, target.height):
        image = image.gravity("centre", target.width, target.height, extend="copy")
    ctx.move_areas(lambda b: offset_box(b, box))
    return resize.finish(image, Size(w, h), ops[1].options, ctx)


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
        frame_ctx = replace(ctx)  # same areas, dpr, resources and memo; its own moves
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
