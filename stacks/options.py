"""The stack option table (rokka-api.md §2.3), declared once.

Drives URL ``o-``/``options-`` items, stack-JSON ``options`` validation, default filling
for the render plan and the ``GET /stackoptions`` body. Defaults are rokka's 2026 values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from stacks.errors import StackError
from stacks.values import HEX_COLOR, NO_DEFAULT, Kind, Param, shown

_AUTOFORMAT_EXCLUDE = (
    "webp|avif|lossless_to_lossy|lossy_to_lossless|lossy_to_lossless_if_bigger|svg|svg_to_png"
)


def _quality(name: str, default: int, low: int = 1, text: str = "") -> Param:
    return Param(
        name,
        Kind.INTEGER,
        text or f"Encoder quality for {name.split('.')[0]} output.",
        default,
        minimum=low,
        maximum=100,
    )


def _flag(name: str, default: bool | None, text: str, *, url_settable: bool = True) -> Param:
    return Param(name, Kind.BOOLEAN, text, default, url_settable=url_settable)


_TABLE: tuple[Param, ...] = (
    Param(
        "basestack",
        Kind.STRING,
        "Stack whose operations run first (one level; its own basestack is not followed).",
        None,
        pattern=r"^[a-z0-9\-_]+$",
        url_settable=False,
    ),
    Param("optim.quality", Kind.INTEGER, "Adaptive optimisation quality.", 5, 0, 10),
    _quality("jpg.quality", 80, text="JPEG quality; 10 lower by default when dpr > 1.5."),
    _quality("webp.quality", 80, text="WebP quality (100 = lossless); 10 lower when dpr > 1.5."),
    _quality("heif.quality", 40),
    _quality("avif.quality", 45),
    _quality("jxl.quality", 70),
    _quality("gif.quality", 70, text="GIF quality (100 = lossless)."),
    _quality("jp2.quality", 40),
    _quality("av1.quality", 70),
    _quality("webm.quality", 50),
    _quality("mp4.quality", 50),
    _quality("pngquant.quality", 98, 10, "Lossy PNG quality (100 = no lossy compression)."),
    Param("png.compression_level", Kind.INTEGER, "zlib level for PNG output.", 7, 0, 9),
    Param(
        "interlacing.mode",
        Kind.STRING,
        "Progressive/interlaced output.",
        "plane",
        values=("none", "line", "plane", "partition"),
    ),
    _flag(
        "source_file",
        False,
        "Deliver the original bytes; needs no operations and no other options.",
        url_settable=False,
    ),
    _flag("remote_fullurl_allow", False, "Allow remote images by full URL.", url_settable=False),
    Param(
        "remote_fullurl_whitelist",
        Kind.STRING_LIST,
        "Regexes a remote full URL must match.",
        None,
        url_settable=False,
    ),
    Param(
        "remote_basepath",
        Kind.STRING,
        "Base URL for remote image paths.",
        None,
        pattern=r"^https?://",
        url_settable=False,
    ),
    _flag("autoformat", False, "Negotiate WebP/AVIF/JXL from the Accept header."),
    Param(
        "autoformat.exclude",
        Kind.STRING,
        "Comma-separated formats/conversions autoformat must not use.",
        None,
        pattern=rf"^({_AUTOFORMAT_EXCLUDE})(,({_AUTOFORMAT_EXCLUDE}))*$",
    ),
    Param(
        "autoformat.include",
        Kind.STRING,
        "Formats autoformat may use in addition (currently only avif).",
        None,
        pattern=r"^avif$",
    ),
    Param("dpr", Kind.NUMBER, "Device pixel ratio; needs a resize operation.", 1.0, 1, 10),
    Param(
        "content_disposition",
        Kind.STRING,
        "Content-Disposition of the response.",
        "inline",
        values=("inline", "attachment"),
    ),
    _flag("optim.disable_all", False, "Disable all output optimisation."),
    _flag("optim.immediate", False, "Optimise before the first response."),
    _flag("optim.ttl_shared", False, "Share the optimisation TTL."),
    _flag("timing_origin", None, "Send timing headers."),
    Param(
        "transparency.color",
        Kind.STRING,
        "Always flatten alpha onto this hex colour.",
        None,
        pattern=HEX_COLOR,
    ),
    Param(
        "jpg.transparency.color",
        Kind.STRING,
        "Colour to flatten alpha onto for JPEG output.",
        "FFFFFF",
        pattern=HEX_COLOR,
    ),
    Param(
        "jpg.transparency.autoformat",
        Kind.STRING,
        "Format to use instead of JPEG when the image has alpha (a string, not a boolean).",
        "false",
        values=("true", "false", "png", "webp"),
    ),
    _flag("jpg.transparency.convert", False, "Convert transparent images to JPEG anyway."),
    Param(
        "timestamp",
        Kind.STRING,
        "Video thumbnail time HH:MM:SS.",
        None,
        pattern=r"^[0-9]{2}:[0-5][0-9]:[0-5][0-9]$",
    ),
    Param("fps", Kind.INTEGER, "Frames per second for video to GIF.", 10, 1, 25),
    Param("dpi", Kind.INTEGER, "PNG/TIFF DPI metadata (needs optim.disable_all).", None, 10, 5000),
    Param("pdf.dpi", Kind.INTEGER, "Rasterisation DPI for PDF sources.", 200, 10, 1000),
    Param("pdf.page", Kind.INTEGER, "Page of a PDF source (1-based).", 1, 1, 1000),
    Param("min_video_width", Kind.INTEGER, "m3u filtering: minimum width.", None, 0, 6000),
    Param("min_video_height", Kind.INTEGER, "m3u filtering: minimum height.", None, 0, 2200),
    _flag("protected", False, "Require signed render URLs.", url_settable=False),
)

STACK_OPTIONS: Mapping[str, Param] = MappingProxyType({p.name: p for p in _TABLE})

# Short names accepted in render URLs only. `af` appears in rokka's circlemask docs example.
URL_ALIASES: Mapping[str, str] = MappingProxyType({"af": "autoformat"})


def option(name: str) -> Param:
    """The stack option ``name``, or StackError naming it."""
    param = STACK_OPTIONS.get(name)
    if param is None:
        raise StackError(f"unknown stack option {shown(name)}", parameter=name)
    return param


def options_from_text(pairs: Mapping[str, str]) -> dict[str, Any]:
    """Convert URL ``o-key-value`` pairs (aliases resolved, URL-forbidden options refused)."""
    out: dict[str, Any] = {}
    for key, text in pairs.items():
        param = option(URL_ALIASES.get(key, key))
        if not param.url_settable:
            raise StackError(
                f"stack option {param.name} cannot be set in a render URL", parameter=param.name
            )
        out[param.name] = param.from_text(text)
    return out


def options_from_json(options: Any) -> dict[str, Any]:
    """Validate a stack-JSON ``options`` object; only the given keys are returned."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise StackError("stack options must be an object")
    return {key: option(key).from_json(value) for key, value in options.items()}


def complete_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every stack option, given values over defaults (``None`` when unset without default)."""
    return {
        name: given[name] if name in given else (p.default if p.default is not NO_DEFAULT else None)
        for name, p in STACK_OPTIONS.items()
    }


def describe_stack_options() -> dict[str, Any]:
    """The ``GET /stackoptions`` body: ``{"properties": {option: schema}}``."""
    return {
        "properties": {name: p.describe(null_in_type=True) for name, p in STACK_OPTIONS.items()}
    }
