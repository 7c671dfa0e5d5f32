"""Output formats: one table, runtime capability checks, Accept negotiation and encoding.

Every output is 8-bit sRGB with no metadata: pixels are converted to sRGB on load (with the
embedded ICC profile when there is one), so no profile needs to travel with the file.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyvips

from engine import foreign, gifwriter, placeholder
from engine.errors import FormatUnavailable

# The pseudo saver of the ``blur`` format: the blurhash package, not libvips.
BLURHASH_SAVER = "blurhash"


@dataclass(frozen=True, slots=True)
class Format:
    """One output format. ``quality_key``/``default_quality``: the rokka stack option, if any."""

    ext: str
    mime: str
    saver: str
    supports_alpha: bool
    supports_animation: bool
    quality_key: str | None = None
    default_quality: int | None = None
    # Extra saver arguments that select the codec (heifsave serves both AVIF and HEIC).
    saver_args: Mapping[str, Any] = field(default_factory=dict)


FORMATS: dict[str, Format] = {
    f.ext: f
    for f in (
        Format("jpg", "image/jpeg", "jpegsave", False, False, "jpg.quality", 80),
        Format("png", "image/png", "pngsave", True, False),
        Format("gif", "image/gif", "gifsave", True, True, "gif.quality", 70),
        Format("webp", "image/webp", "webpsave", True, True, "webp.quality", 80),
        Format(
            "avif",
            "image/avif",
            "heifsave",
            True,
            False,
            "avif.quality",
            45,
            {"compression": "av1"},
        ),
        Format(
            "heic",
            "image/heic",
            "heifsave",
            True,
            False,
            "heif.quality",
            40,
            {"compression": "hevc"},
        ),
        Format("tiff", "image/tiff", "tiffsave", True, False),
        # still images only: the bundled libvips has no jxlsave, engine/foreign.py encodes
        Format("jxl", "image/jxl", "jxlsave", True, False, "jxl.quality", 70),
        # Not an image: the BlurHash text of the rendered image (engine/placeholder.py).
        # Alpha is flattened as for JPEG; an animation hashes its first frame.
        Format("blur", placeholder.MIME, BLURHASH_SAVER, False, False),
    )
}

# AVIF encoder effort (libvips heifsave ``effort``, 0 = fastest .. 9 = smallest; libaom's
# cpu-used is 9 - effort). 2 was chosen from benchmarks/test_avif_bench.py: about a tenth of
# the time of libvips' own default (4) for files 5-10 % larger (docs/performance.md).
# webapp/settings.py repeats it as the ``avif_effort`` setting's default.
DEFAULT_AVIF_EFFORT = 2

# Autoformat preference, best first (rokka offers WebP, AVIF and JPEG XL). JPEG XL comes
# after AVIF: browsers that take both (Safari) get AVIF, whose encoder libvips runs in
# place; JPEG XL goes through engine/foreign.py.
_AUTOFORMAT_ORDER = ("avif", "jxl", "webp")


@functools.cache
def available(ext: str) -> bool:
    """Whether this server can encode ``ext``: the libvips saver exists and a 16x16 encode
    works, or engine/foreign.py encodes it (HEIC, JPEG XL).

    The trial encode matters for heifsave, which exists but may lack the HEVC encoder.
    Cached per process; call only after :func:`engine.probe.configure` (never at import).
    """
    fmt = FORMATS.get(ext)
    if fmt is None:
        return False
    if fmt.saver == BLURHASH_SAVER:
        return True
    if ext in foreign.OUTPUTS and not _libvips_encodes(ext):
        return True  # engine/foreign.py encodes it
    return _libvips_encodes(ext)


@functools.cache
def _libvips_encodes(ext: str) -> bool:
    fmt = FORMATS[ext]
    if not pyvips.type_find("VipsOperation", fmt.saver):
        return False
    try:
        sample = (pyvips.Image.black(16, 16, bands=3) + 128).cast("uchar")
        getattr(sample, f"{fmt.saver}_buffer")(**fmt.saver_args)
    except pyvips.Error:
        return False
    return True


def format_for(ext: str) -> Format:
    """The table row for ``ext``; FormatUnavailable when unknown or not encodable here."""
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise FormatUnavailable(f"unknown output format: {ext}")
    if not available(ext):
        raise FormatUnavailable(f"output format {ext} is not available on this server")
    return fmt


def _accepted(accept_header: str | None) -> set[str]:
    types = set()
    for part in (accept_header or "").split(","):
        mime, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if mime and q > 0:
            types.add(mime.lower())
    return types


def excluded(exclude: str | None) -> frozenset[str]:
    """The ``autoformat.exclude`` list (comma-separated, validated by ``stacks``) as a set."""
    return frozenset(part.strip() for part in (exclude or "").split(",") if part.strip())


def negotiate(
    requested_ext: str, accept_header: str | None, autoformat: bool, exclude: str | None = None
) -> tuple[str, bool]:
    """Output extension for a request: ``(ext, negotiated)``.

    With ``autoformat`` the first of AVIF, JPEG XL, WebP that the ``Accept`` header lists (q > 0,
    wildcards ignored as browsers send ``*/*`` everywhere), ``exclude`` (the
    ``autoformat.exclude`` option) does not name and this server can encode wins; GIF only
    switches to WebP, which keeps animation, and so does PNG when ``lossless_to_lossy`` is
    excluded (AVIF is lossy; a PNG asked for comes back as lossless WebP, see
    ``stacks.resolve``). ``negotiated`` is True when the result differs from
    ``requested_ext`` (the caller then adds ``Vary: Accept``).
    """
    if not autoformat or requested_ext == "blur":
        # A BlurHash is text: no image format stands in for it.
        return requested_ext, False
    accepted = _accepted(accept_header)
    banned = excluded(exclude)
    keep_lossless = requested_ext == "png" and "lossless_to_lossy" in banned
    if requested_ext == "gif":
        candidates: tuple[str, ...] = ("webp",)  # the one that keeps animation
    elif keep_lossless:
        candidates = ("jxl", "webp")  # both have a lossless mode (AVIF here does not)
    else:
        candidates = _AUTOFORMAT_ORDER
    for ext in candidates:
        if ext not in banned and FORMATS[ext].mime in accepted and available(ext):
            return ext, ext != requested_ext
    return requested_ext, False


# The values of ``jpg.transparency.autoformat`` that ask for a transparency-keeping format.
_ALPHA_FALLBACK_ON = ("true", "png", "webp")


def alpha_fallback(options: Mapping[str, Any], accept_header: str | None) -> str | None:
    """The format a JPEG render switches to when its pixels have visible alpha, or None.

    rokka's ``jpg.transparency.autoformat``: WebP when the ``Accept`` header lists it (and
    ``autoformat.exclude`` does not name it), else PNG. (rokka answers ``"true"`` with a
    JPEG-in-SVG wrapper when ``Accept`` has ``*/*``; cropstack has no SVG output and sends
    PNG there.) None when the option is off, ``jpg.transparency.convert`` forces JPEG, or
    ``transparency.color`` flattens every output anyway.
    """
    if (
        str(options.get("jpg.transparency.autoformat")) not in _ALPHA_FALLBACK_ON
        or options.get("jpg.transparency.convert")
        or options.get("transparency.color") is not None
    ):
        return None
    webp_ok = "webp" not in excluded(options.get("autoformat.exclude"))
    if webp_ok and FORMATS["webp"].mime in _accepted(accept_header) and available("webp"):
        return "webp"
    return "png"


def has_visible_alpha(image: pyvips.Image) -> bool:
    """Whether some pixel of ``image`` is not fully opaque (alpha below its maximum)."""
    if not image.hasalpha():
        return False
    top = 65535 if image.format == "ushort" else 255
    return bool(image[image.bands - 1].min() < top)


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF8", "gif"),
)


def sniff(body: bytes) -> str | None:
    """The output extension encoded bytes are in, by their signature (None if unknown)."""
    for magic, ext in _SIGNATURES:
        if body.startswith(magic):
            return ext
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "webp"
    if body[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    return None


def quality(fmt: Format, options: Mapping[str, Any]) -> int | None:
    """Encoder quality 1-100 for ``fmt`` from the stack options.

    The plan already holds the effective value: ``stacks.resolve`` lowers the *default*
    jpg/webp quality by 10 when ``dpr > 1.5`` and the user did not set it, which only the
    plan builder can tell apart from an explicit value equal to the default.
    """
    if fmt.quality_key is None:
        return None
    value = options.get(fmt.quality_key)
    return int(value) if value is not None else int(fmt.default_quality or 80)


def parse_hex(colour: str) -> list[float]:
    """``"FFFFFF"`` / ``"#fff"`` as [r, g, b] 0-255."""
    text = colour.lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    return [float(int(text[i : i + 2], 16)) for i in (0, 2, 4)]


def to_output_pixels(image: pyvips.Image, fmt: Format, options: Mapping[str, Any]) -> pyvips.Image:
    """8-bit sRGB pixels ready for ``fmt``: alpha flattened where the format or options ask."""
    if image.interpretation in ("b-w", "grey16"):
        image = image.colourspace("srgb")
    elif image.interpretation not in ("srgb", "rgb", "multiband") or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    if image.hasalpha():
        colour = options.get("transparency.color")
        if colour is None and not fmt.supports_alpha:
            colour = options.get("jpg.transparency.color") or "FFFFFF"
        if colour is not None:
            image = image.flatten(background=parse_hex(str(colour)))
    return image


def quantise_quality(options: Mapping[str, Any]) -> int | None:
    """The palette quality (10-99) for PNG and lossless WebP output, or None for none.

    rokka runs pngquant on PNG and lossless WebP in its optimisation step (after its first,
    unoptimised answer) unless ``pngquant.quality`` is 100 or ``optim.disable_all`` is set.
    cropstack optimises only when ``optim.immediate`` is on (it never re-renders later),
    with libvips' own quantiser (libimagequant): ~0.45 s per output megapixel, against
    0.04 s for a plain PNG save.
    """
    level = options.get("pngquant.quality")
    level = 98 if level is None else int(level)
    if not options.get("optim.immediate") or options.get("optim.disable_all") or level >= 100:
        return None
    return level


def palette_animation(fmt: Format, options: Mapping[str, Any]) -> bool:
    """Whether an opaque animation in ``fmt`` is written by engine/gifwriter.py (GIF below
    ``gif.quality`` 100): every frame is mapped to a palette without dithering."""
    return fmt.ext == "gif" and (quality(fmt, options) or 70) < 100


def gif_bitdepth(q: int) -> int:
    """Palette depth in bits (2-8) for ``gif.quality`` 1-100: full 8 from 70 (the default)
    up, one bit less for every 10 points below."""
    return max(2, min(8, q // 10 + 1))


def encode(
    image: pyvips.Image,
    fmt: Format,
    options: Mapping[str, Any],
    *,
    avif_effort: int = DEFAULT_AVIF_EFFORT,
) -> bytes:
    """Encode output-ready pixels (see :func:`to_output_pixels`) with the stack options;
    ``avif_effort`` (0-9, the server's ``avif_effort`` setting) is the AVIF encoder's CPU
    effort: higher is slower and smaller at the same quality."""
    if fmt.saver == BLURHASH_SAVER:
        return placeholder.encode(image)
    interlaced = str(options.get("interlacing.mode") or "none") != "none"
    q = quality(fmt, options)
    palette_q = quantise_quality(options)
    args: dict[str, Any] = {"keep": "none", **fmt.saver_args}
    dpi = options.get("dpi")
    if dpi and fmt.ext in ("png", "tiff"):
        # libvips resolution is pixels per millimetre; PNG pHYs / TIFF tags carry it.
        image = image.copy(xres=int(dpi) / 25.4, yres=int(dpi) / 25.4)
    if fmt.ext == "jpg":
        args.update(Q=q, interlace=interlaced, optimize_coding=True)
    elif fmt.ext == "png":
        level = options.get("png.compression_level")
        args.update(compression=7 if level is None else int(level), interlace=interlaced)
        if palette_q is not None:
            args.update(palette=True, Q=palette_q)
    elif fmt.ext == "webp":
        args.update(Q=q, lossless=q == 100)
        if q == 100 and palette_q is not None:
            # Lossless WebP's counterpart of pngquant: near-lossless preprocessing at level Q.
            args.update(near_lossless=True, Q=palette_q)
    elif fmt.ext in ("avif", "heic"):
        args.update(Q=q, lossless=q == 100)
        if fmt.ext == "avif":
            args.update(effort=avif_effort)
    elif fmt.ext == "gif":
        # gif.quality 100 = lossless frame reuse; below 70 the palette gets fewer bits.
        level = q or 70
        if palette_animation(fmt, options) and gifwriter.page_height(image) < image.height:
            # An opaque animation: a palette per frame, no dithering (engine/gifwriter.py).
            image = image.copy_memory()
            pixels = gifwriter.opaque_pixels(image)
            if pixels is not None:
                return gifwriter.encode(image, pixels, gif_bitdepth(level))
        args.update(
            interframe_maxerror=0 if level == 100 else (100 - level) / 10,
            bitdepth=gif_bitdepth(level),
        )
    elif fmt.ext == "tiff":
        args.update(compression="deflate")
    elif fmt.ext == "jxl":
        args.update(Q=q)
    if fmt.ext in foreign.OUTPUTS and not _libvips_encodes(fmt.ext):
        return foreign.encode(image, fmt.ext, q or fmt.default_quality or 80)
    return bytes(getattr(image, f"{fmt.saver}_buffer")(**args))
