"""The stack option table (rokka-api.md §2.3), declared once.

Drives URL ``o-``/``options-`` items, stack-JSON ``options`` validation, default filling
for the render plan and the ``GET /stackoptions`` body. Defaults are rokka's 2026 values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from stacks.errors import StackError
from stacks.urlpattern import compiled
from stacks.values import HEX_COLOR, NO_DEFAULT, Kind, Param, shown

_AUTOFORMAT_EXCLUDE = (
    "webp|avif|jxl|lossless_to_lossy|lossy_to_lossless|lossy_to_lossless_if_bigger|svg|svg_to_png"
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
    Param(
        "optim.quality",
        Kind.INTEGER,
        "JPEG/WebP quality level when jpg.quality/webp.quality are not set: each step is 3"
        " quality points around 80 at 5.",
        5,
        0,
        10,
    ),
    _quality("jpg.quality", 80, text="JPEG quality; 10 lower by default when dpr > 1.5."),
    _quality("webp.quality", 80, text="WebP quality (100 = lossless); 10 lower when dpr > 1.5."),
    _quality("avif.quality", 45),
    _quality("heif.quality", 40, text="HEIC quality (100 = lossless)."),
    _quality("jxl.quality", 70, text="JPEG XL quality (100 = lossless)."),
    Param(
        "pdf.dpi",
        Kind.INTEGER,
        "Resolution a PDF page is rendered at; doubled when the page would be narrower than "
        "1000 px.",
        200,
        10,
        1000,
    ),
    Param("pdf.page", Kind.INTEGER, "Page of a PDF source to render (1 = first).", 1, 1, 1000),
    _quality(
        "gif.quality", 70, text="GIF quality: palette depth below 70, lossy frame reuse below 100."
    ),
    _quality(
        "pngquant.quality",
        98,
        10,
        "Palette quantisation quality of PNG and lossless WebP (100 = none).",
    ),
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
    _flag("autoformat", False, "Negotiate AVIF/WebP from the Accept header."),
    Param(
        "autoformat.exclude",
        Kind.STRING,
        "Comma-separated formats (webp, avif, jxl) autoformat must not use.",
        None,
        pattern=rf"^({_AUTOFORMAT_EXCLUDE})(,({_AUTOFORMAT_EXCLUDE}))*$",
    ),
    Param(
        "autoformat.include",
        Kind.STRING,
        "Formats autoformat may use in addition (only avif, which is always on here).",
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
    _flag(
        "optim.disable_all",
        False,
        "No PNG/WebP palette quantisation, no optim.quality adaptation.",
    ),
    _flag(
        "optim.immediate",
        False,
        "Optimise (PNG/WebP palette quantisation) at the first render; on by itself when "
        "the stack or URL sets pngquant.quality. Off: the unoptimised render, as rokka's "
        "first answer.",
    ),
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
        "Instead of JPEG, WebP (if accepted) or PNG when the output has visible alpha (a string).",
        "false",
        values=("true", "false", "png", "webp"),
    ),
    _flag(
        "jpg.transparency.convert",
        False,
        "Flatten alpha into JPEG even when jpg.transparency.autoformat is on.",
    ),
    Param("dpi", Kind.INTEGER, "PNG/TIFF resolution metadata.", None, 10, 5000),
    _flag("protected", False, "Require signed render URLs.", url_settable=False),
    # Remote images (webapp/remoteimages.py): per stack, over the organization's options.
    # Never from a URL: a URL could otherwise open remote fetching.
    _flag(
        "remote_fullurl_allow",
        None,
        "Render URLs may name a full remote URL, -https://...- (see remote_fullurl_whitelist).",
        url_settable=False,
    ),
    Param(
        "remote_fullurl_whitelist",
        Kind.STRING_LIST,
        "Regular expressions; a full remote URL is fetched only when one matches its host "
        "or the whole URL (RE2 syntax: no backreferences or look-around). null: any URL.",
        None,
        url_settable=False,
    ),
    Param(
        "remote_basepath",
        Kind.STRING,
        "http(s) URL that -{path}- in render URLs is appended to.",
        None,
        pattern=r"^https?://[^\s/]+",
        url_settable=False,
    ),
)

STACK_OPTIONS: Mapping[str, Param] = MappingProxyType({p.name: p for p in _TABLE})

_NO_VIDEO = "cropstack has no video input or output"
_NO_EFFECT = "undocumented by rokka; it would have no effect here"

# Options rokka lists that cropstack cannot honour. Rather than accept them and do nothing
# (the user would believe they work), a stack or URL that sets one gets a 400 saying why.
# They are not in GET /stackoptions.
REFUSED_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "jp2.quality": "cropstack has no JPEG 2000 output",
        "av1.quality": _NO_VIDEO,
        "webm.quality": _NO_VIDEO,
        "mp4.quality": _NO_VIDEO,
        "timestamp": _NO_VIDEO,
        "fps": _NO_VIDEO,
        "min_video_width": _NO_VIDEO,
        "min_video_height": _NO_VIDEO,
        "optim.ttl_shared": _NO_EFFECT,
        "timing_origin": _NO_EFFECT,
    }
)

# Values of accepted options that cropstack cannot honour: option -> (value, reason).
_REFUSED_VALUES: Mapping[str, tuple[Any, str]] = MappingProxyType({})

# Short names accepted in render URLs only. `af` appears in rokka's circlemask docs example.
URL_ALIASES: Mapping[str, str] = MappingProxyType({"af": "autoformat"})


def option(name: str) -> Param:
    """The stack option ``name``, or StackError naming it."""
    param = STACK_OPTIONS.get(name)
    if name in REFUSED_OPTIONS:
        raise StackError(
            f"stack option {name} is not supported: {REFUSED_OPTIONS[name]}", parameter=name
        )
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
        out[param.name] = _honoured(param.name, param.from_text(text))
    return out


#: Most patterns of ``remote_fullurl_whitelist`` and characters of each (as the
#: organization option, docs/accounts.md).
MAX_WHITELIST = (100, 1024)


def _whitelist(value: Any) -> Any:
    """``remote_fullurl_whitelist``: at most 100 patterns that compile; 400 otherwise."""
    if value is None:
        return None
    if len(value) > MAX_WHITELIST[0]:
        raise StackError(
            f"stack option remote_fullurl_whitelist holds at most {MAX_WHITELIST[0]} patterns",
            parameter="remote_fullurl_whitelist",
        )
    for pattern in value:
        try:
            if len(pattern) > MAX_WHITELIST[1]:
                raise ValueError(f"longer than {MAX_WHITELIST[1]} characters")
            compiled(pattern)
        except ValueError as exc:
            raise StackError(
                f"stack option remote_fullurl_whitelist: invalid pattern {shown(pattern)} ({exc})",
                parameter="remote_fullurl_whitelist",
            ) from exc
    return value


def _honoured(name: str, value: Any) -> Any:
    if name == "remote_fullurl_whitelist":
        return _whitelist(value)
    refused = _REFUSED_VALUES.get(name)
    if refused is not None and value == refused[0]:
        raise StackError(f"stack option {name} cannot be {value!r}: {refused[1]}", parameter=name)
    return value


def options_from_json(options: Any) -> dict[str, Any]:
    """Validate a stack-JSON ``options`` object; only the given keys are returned."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise StackError("stack options must be an object")
    return {key: _honoured(key, option(key).from_json(value)) for key, value in options.items()}


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
