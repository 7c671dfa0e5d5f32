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

from engine.errors import FormatUnavailable


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
        Format("jxl", "image/jxl", "jxlsave", True, True, "jxl.quality", 70),
    )
}

# Autoformat preference, best first (rokka: AVIF, then WebP; JXL when the encoder exists).
_AUTOFORMAT_ORDER = ("avif", "webp")


@functools.cache
def available(ext: str) -> bool:
    """Whether this libvips can encode ``ext``: the saver exists and a 16x16 encode works.

    The trial encode matters for heifsave, which exists but may lack the HEVC encoder.
    Cached per process; call only after :func:`engine.probe.configure` (never at import).
    """
    fmt = FORMATS.get(ext)
    if fmt is None or not pyvips.type_find("VipsOperation", fmt.saver):
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


def negotiate(requested_ext: str, accept_header: str | None, autoformat: bool) -> tuple[str, bool]:
    """Output extension for a request: ``(ext, negotiated)``.

    With ``autoformat`` the first of AVIF, WebP that the ``Accept`` header lists (q > 0,
    wildcards ignored as browsers send ``*/*`` everywhere) and this server can encode wins;
    GIF only switches to WebP, which keeps animation. ``negotiated`` is True when the result
    differs from ``requested_ext`` (the caller then adds ``Vary: Accept``).
    """
    if not autoformat:
        return requested_ext, False
    accepted = _accepted(accept_header)
    candidates = ("webp",) if requested_ext == "gif" else _AUTOFORMAT_ORDER
    for ext in candidates:
        if FORMATS[ext].mime in accepted and available(ext):
            return ext, ext != requested_ext
    return requested_ext, False


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


def encode(image: pyvips.Image, fmt: Format, options: Mapping[str, Any]) -> bytes:
    """Encode output-ready pixels (see :func:`to_output_pixels`) with the stack options."""
    interlaced = str(options.get("interlacing.mode") or "none") != "none"
    q = quality(fmt, options)
    args: dict[str, Any] = {"keep": "none", **fmt.saver_args}
    if fmt.ext == "jpg":
        args.update(Q=q, interlace=interlaced, optimize_coding=True)
    elif fmt.ext == "png":
        level = options.get("png.compression_level")
        args.update(compression=7 if level is None else int(level), interlace=interlaced)
    elif fmt.ext == "webp":
        args.update(Q=q, lossless=q == 100)
    elif fmt.ext in ("avif", "heic"):
        args.update(Q=q, lossless=q == 100)
    elif fmt.ext == "gif":
        # gif.quality 100 = lossless; lower values allow lossy inter-frame reuse.
        args.update(interframe_maxerror=0 if q == 100 else (100 - (q or 70)) / 10)
    elif fmt.ext == "tiff":
        args.update(compression="deflate")
    elif fmt.ext == "jxl":
        args.update(Q=q)
    return bytes(getattr(image, f"{fmt.saver}_buffer")(**args))
