"""What a render will cost, decided from geometry before any pixel is decoded.

A render is a chain of images: the decoded source, the output of every operation, the
encoded output. :func:`estimate` gives each of them its size (and frame count) from the
plan and the source header alone; :func:`check` refuses the plan (400 ``OverBudget``) when
any of them is over the pixel budget, frames x pixels is over the animation budget, the
output is over rokka's output limits, or the estimated work is far past what a render may
take. The estimated work also sorts admitted renders into a cheap and an expensive lane
(webapp/renderpool.py). docs/security.md lists every budget.

Work is counted in *megapixel passes*: one pass is one simple operation over one megapixel
(~5-15 ms of one core here). The factors below are coarse upper-bound estimates measured
on this machine's libvips, not promises; the render deadline bounds whatever they miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import foreign
from engine.errors import OverBudget
from engine.formats import DEFAULT_AVIF_EFFORT, format_for, palette_animation, quantise_quality
from engine.geometry import MAX_OUTPUT_SIDE, Areas, Size
from engine.operations import KINDS, RenderContext
from engine.operations.kind import one_pass
from engine.probe import ImageInfo
from engine.resources import secondary_render_key
from engine.shrink import allowed_ratio, decoded_size
from engine.sizing import step_sizes

if TYPE_CHECKING:
    from stacks.plan import Operation, RenderPlan

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_ANIMATION_PIXELS = 50_000_000
DEFAULT_MAX_WORK = 1_000.0

# Passes per output pixel of encoding, by format (AVIF/HEIC encoders are slow by design).
# ``blur`` (a BlurHash) converts the output to linear light and reduces it to 32 px.
_ENCODE_PASSES = {"jpg": 1.0, "png": 4.0, "tiff": 1.0, "gif": 130.0, "webp": 6.0, "blur": 3.0}
# GIF: libvips' writer quantises every frame with libimagequant and dithers: 1.2-1.3 s per
# output megapixel of a photo at one thread (skimage's astronaut, coffee, chelsea at
# 1000 px; 1.6 s for noise, 55 ms for flat colour), 130 passes of 10 ms. An opaque
# animation below gif.quality 100 is written by engine/gifwriter.py instead (a palette per
# frame, no dithering): ~110 ms per output megapixel with its decode share on W4.
_GIF_WRITER_PASSES = 12.0
_SLOW_ENCODE_PASSES = 60.0
# AVIF by encoder effort 0-9 (the ``avif_effort`` setting): encode time per output
# megapixel of the slowest image of benchmarks/test_avif_bench.py (the photo: 46, 270,
# 407, 930, 2680 ... 26500 ms/MP) in passes of 10 ms. 4 is libvips' own default (AVIF
# counted 60 passes before, whatever the effort; HEIC still does).
_AVIF_ENCODE_PASSES = (5.0, 27.0, 40.0, 90.0, 270.0, 580.0, 900.0, 1300.0, 1400.0, 2700.0)
# Palette quantisation (PNG, pngquant.quality < 100) and lossless WebP, measured on 1 MP
# against a JPEG encode at 1 pass: 21 and 16-32 passes.
_PALETTE_PNG_PASSES = 24.0
_LOSSLESS_WEBP_PASSES = 32.0
# Passes per source pixel of decoding a format at full size.
_DECODE_PASSES = {"jpg": 1.0, "png": 1.5, "gif": 1.0, "tiff": 1.0, "webp": 2.0, "svg": 4.0}
_SLOW_DECODE_PASSES = 6.0  # HEIF/AVIF
# A referenced image (an overlay) is resampled to its placed size and composited once.
_SECONDARY_RESAMPLE_PASSES = 2.0


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of one render; pixel counts are per frame unless named otherwise.

    - ``max_pixels``: any image of the chain (decoded source, each operation's result,
      the output), width x height, px.
    - ``max_animation_pixels``: frames x pixels of any image of an animated render, px.
    - ``max_side``: output width or height, px (rokka: 10000).
    - ``max_work``: estimated megapixel passes of the whole render.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_animation_pixels: int = DEFAULT_MAX_ANIMATION_PIXELS
    max_side: int = MAX_OUTPUT_SIDE
    max_work: float = DEFAULT_MAX_WORK


@dataclass(frozen=True, slots=True)
class Step:
    """One image of the chain: what made it and its size (one frame), in pixels."""

    name: str
    size: Size


@dataclass(frozen=True, slots=True)
class Cost:
    """The estimate of one render: every image of the chain, frames, work (megapixel passes).

    ``steps[0]`` is the decoded source (``decode``, full size, or ``decode-shrunk`` when the
    plan lets the decoder shrink); the last step is the output.
    """

    steps: tuple[Step, ...]
    frames: int
    work: float

    @property
    def output(self) -> Size:
        return self.steps[-1].size

    @property
    def peak(self) -> Step:
        """The largest image of the chain."""
        return max(self.steps, key=lambda s: s.size.pixels)


def decode_ratio(plan: RenderPlan, info: ImageInfo) -> float | None:
    """How much smaller the decoder may hand over the source for ``plan``: the same rule the
    load step follows (engine/shrink.py), asked without the image's areas (a crop's box is
    then placed by its fallback; its size, which is all that matters here, is the same for
    the absolute and ratio modes)."""
    ops = [op for op in plan.operations if op.enabled]
    ctx = RenderContext(areas=Areas(), dpr=float(plan.options.get("dpr") or 1.0))
    return allowed_ratio(ops, info.size, ctx)


def encode_passes(
    plan: RenderPlan, avif_effort: int = DEFAULT_AVIF_EFFORT, *, palette_frames: bool = False
) -> float:
    """Passes per output pixel of the encode ``plan`` asks for (the dearest it may pick);
    ``avif_effort`` (0-9) is the AVIF encoder's effort, which sets what an AVIF costs;
    ``palette_frames``: the output is an opaque animation that engine/gifwriter.py may
    write (a GIF below ``gif.quality`` 100), far cheaper than libvips' GIF writer.

    A JPEG with ``jpg.transparency.autoformat`` may leave as PNG or WebP, so it counts as
    the dearer of those; PNG quantisation and lossless WebP cost far more than plain saves.
    """
    ext = plan.output_format
    options = plan.options
    quantised = quantise_quality(options) is not None
    png = _PALETTE_PNG_PASSES if quantised else _ENCODE_PASSES["png"]
    if ext == "png":
        return png
    if ext == "webp" and options.get("webp.quality") == 100:
        return _LOSSLESS_WEBP_PASSES
    if ext == "jpg" and str(options.get("jpg.transparency.autoformat")) in ("true", "png", "webp"):
        return max(png, _ENCODE_PASSES["webp"])
    if ext == "avif":
        return _AVIF_ENCODE_PASSES[min(max(avif_effort, 0), len(_AVIF_ENCODE_PASSES) - 1)]
    if ext == "gif" and palette_frames and palette_animation(format_for(ext), options):
        return _GIF_WRITER_PASSES
    return _ENCODE_PASSES.get(ext, _SLOW_ENCODE_PASSES)


def estimate(
    plan: RenderPlan,
    info: ImageInfo,
    *,
    animate: bool,
    images: Mapping[str, ImageInfo] | None = None,
    rendered: Mapping[str, Size] | None = None,
    avif_effort: int = DEFAULT_AVIF_EFFORT,
) -> Cost:
    """The cost of rendering ``plan`` on a source described by ``info``.

    ``animate`` is True when every frame is rendered (animated source, animated format).
    ``images`` describes the images the plan references by hash (key: the hash as written):
    each is decoded at full size (a step of its own, checked like the primary's decode) and
    resampled once, work counted once whatever the frame count (it is prepared once).
    ``rendered`` are the output sizes of the secondary renders the plan names (their own
    cost is estimated separately, engine/pipeline.py). ``avif_effort``: see
    :func:`encode_passes`.
    """
    frames = info.n_pages if animate else 1
    images = images or {}
    ops = [op for op in plan.operations if op.enabled]
    known = {key: i.size for key, i in images.items()} | dict(rendered or {})
    sizes = step_sizes(plan, info.size, known)
    ratio = decode_ratio(plan, info)
    # engine/foreign.py's decoders (HEIC, JPEG XL, PDF, PSD) always decode the whole image
    if ratio is not None and sizes and not foreign.decodes(info.format):
        # The decode streams into the leading steps (engine/shrink.py): the decoder hands
        # over a shrunk image where the format allows, else lines that the first step
        # consumes as they come (a 225 MP PNG resized to 300 px never exists whole).
        shrunk = decoded_size(info.format, info.size, ratio)
        held = shrunk if shrunk != info.size else sizes[0][1]
        decoded = Step("decode-shrunk", min(held, info.size, key=lambda s: s.pixels))
        # What the decoder spends getting there depends on the format.
        passes, current = _shrunk_decode(info.format, info.size, shrunk)
        work = _mp(info.size) * passes
    else:
        decoded = Step("decode", info.size)
        work = _mp(info.size) * _DECODE_PASSES.get(info.format, _SLOW_DECODE_PASSES)
        current = info.size
    steps = [decoded]
    for op, (name, size) in zip(ops, sizes, strict=True):
        work += _op_passes(op, current, size)
        steps.append(Step(name, size))
        current = size
    # Frames of an opaque source stay opaque unless an operation adds alpha: then the
    # writer falls back to libvips' and the deadline bounds what this misses.
    palette = animate and frames > 1 and info.opaque
    work += _mp(current) * encode_passes(plan, avif_effort, palette_frames=palette)
    work *= frames
    named: list[tuple[str, ImageInfo]] = []
    for ref in plan.source_references():
        secondary = images.get(ref.hash) if ref.image else None
        if secondary is not None:
            named.append((f"{ref.operation} {ref.parameter} {ref.hash}", secondary))
    # Secondary stacks rendered before, from the render cache (composition ``cache``), are
    # images under the key the composition looks them up by.
    for op in ops:
        stack = op.options.get("secondary_stack")
        if isinstance(stack, str):
            variables = op.options.get("secondary_stack_variables")
            key = secondary_render_key(stack, variables, op.options.get("secondary_image"))
            if key in images:
                named.append((f"{op.name} cached secondary_stack {stack}", images[key]))
    for name, secondary in named:
        steps.insert(1, Step(name, secondary.size))
        decode = _DECODE_PASSES.get(secondary.format, _SLOW_DECODE_PASSES)
        work += _mp(secondary.size) * (decode + _SECONDARY_RESAMPLE_PASSES)
    return Cost(steps=tuple(steps), frames=frames, work=work)


def probe_work(info: ImageInfo) -> float:
    """Estimated megapixel passes of the upload check of a source ``info`` describes.

    The check decodes JPEG at 1/8 scale (about a tenth of a pass per pixel, engine/probe.py);
    every other format decodes every pixel of every frame, whatever scale it is checked at.
    """
    pixels = _mp(info.size) * max(info.n_pages, 1)
    if info.format == "jpg":
        return pixels * (0.1 + _DECODE_PASSES["jpg"] / 64)
    return pixels * _DECODE_PASSES.get(info.format, _SLOW_DECODE_PASSES)


def unpredictable(info: ImageInfo) -> bool:
    """Whether the source's cost cannot be told from its header: SVG (filters, paths and
    text cost what they cost at rasterisation). Such work always takes the expensive lane.
    """
    return info.format == "svg"


def check(cost: Cost, budget: Budget) -> None:
    """Raise ``OverBudget`` (400) when any limit of ``budget`` is passed; see :class:`Budget`."""
    out = cost.output
    if out.width > budget.max_side or out.height > budget.max_side:
        raise OverBudget(
            f"output too large ({out.width}x{out.height}; at most {budget.max_side} px a side)"
        )
    for step in cost.steps:
        if step.size.pixels > budget.max_pixels:
            raise OverBudget(
                f"image too large: {step.name} makes {step.size.width}x{step.size.height} px "
                f"(at most {budget.max_pixels} px per image)"
            )
    peak = cost.peak
    if cost.frames > 1 and peak.size.pixels * cost.frames > budget.max_animation_pixels:
        raise OverBudget(
            f"animation too large: {cost.frames} frames of {peak.size.width}x"
            f"{peak.size.height} px at {peak.name} (at most {budget.max_animation_pixels} px "
            "over all frames)"
        )
    if cost.work > budget.max_work:
        raise OverBudget(
            f"render too expensive (about {cost.work:.0f} megapixel passes, at most "
            f"{budget.max_work:.0f}); use a smaller output or lighter operations"
        )


def _mp(size: Size) -> float:
    return size.pixels / 1e6


def _shrunk_decode(fmt: str, source: Size, decoded: Size) -> tuple[float, Size]:
    """(passes per source pixel, size the next step's work is counted from) of decoding
    ``source`` at the size ``decoded``.

    Only JPEG decodes less when it shrinks (DCT scaling, at most 1/8; entropy decoding still
    reads every coefficient, about a tenth of a pass), and SVG is rasterised at the decoded
    size. WebP decodes every pixel and scales inside the decoder, counted as the scaling
    step's work on the full size.
    """
    ratio = decoded.pixels / max(source.pixels, 1)
    if fmt == "svg":
        return _DECODE_PASSES[fmt] * ratio, decoded
    if fmt == "jpg":
        return 0.1 + _DECODE_PASSES[fmt] * ratio, decoded
    return _DECODE_PASSES.get(fmt, _SLOW_DECODE_PASSES), source


def _op_passes(op: Operation, before: Size, after: Size) -> float:
    """Estimated megapixel passes of one operation from ``before`` to ``after``."""
    kind = KINDS.get(op.name)
    return (kind.passes if kind else one_pass)(op.options, before, after)
