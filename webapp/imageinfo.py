"""What an uploaded file is: the web layer's thin adapter over ``engine.probe``.

``inspect`` calls ``engine.probe.probe`` when the engine package provides it and falls
back to a minimal pyvips reader with the same rules otherwise (load only from a buffer,
untrusted loaders blocked, an allow-list of loaders, the pixel cap checked from the
header before any decoding, then one full decode with ``fail_on="error"``).

pyvips is imported lazily inside functions: gunicorn forks workers after importing the
app, and libvips hangs in children forked after the parent used it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from webapp.errors import ApiError
from webapp.settings import Settings

# libvips loader nickname -> (format, mimetype); anything else is refused.
_LOADERS: dict[str, tuple[str, str]] = {
    "jpegload_buffer": ("jpg", "image/jpeg"),
    "pngload_buffer": ("png", "image/png"),
    "webpload_buffer": ("webp", "image/webp"),
    "gifload_buffer": ("gif", "image/gif"),
    "heifload_buffer": ("heic", "image/heic"),
    "tiffload_buffer": ("tiff", "image/tiff"),
    "svgload_buffer": ("svg", "image/svg+xml"),
}
_ANIMATABLE = frozenset({"gif", "webp"})

_configured_pid: int | None = None
_configure_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The facts the catalog stores about a source image.

    ``width``/``height`` are pixels in display orientation (EXIF orientation applied;
    one frame for animations). ``orientation`` is the EXIF value 1-8.
    """

    width: int
    height: int
    format: str
    mimetype: str
    animated: bool
    n_pages: int
    opaque: bool
    orientation: int


def _configure(settings: Settings) -> None:
    """Process-wide libvips settings, applied once per process (after any fork)."""
    global _configured_pid
    if _configured_pid == os.getpid():
        return
    with _configure_lock:
        if _configured_pid == os.getpid():
            return
        import pyvips

        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.cache_set_max_files(0)
        pyvips.concurrency_set(max(1, settings.vips_concurrency))
        pyvips.block_untrusted_set(True)
        # SVG from a *buffer* has no base directory, so it cannot read sibling files, and
        # librsvg fetches no URLs; the recordings upload an SVG, so allow that one loader.
        pyvips.operation_block_set("VipsForeignLoadSvgBuffer", False)
        _configured_pid = os.getpid()


def inspect(data: bytes, settings: Settings) -> ImageInfo:
    """Identify and fully validate ``data``; a 422 ``ApiError`` if it is no usable image.

    Refuses empty files, non-images, loaders outside the allow-list, broken or truncated
    files, more than ``settings.max_source_frames`` frames and more than
    ``settings.max_source_pixels`` pixels (width x height x frames, from the header).
    """
    if not data:
        raise ApiError(422, "Empty file: not an image")
    _configure(settings)
    try:
        from engine.probe import probe  # type: ignore[import-not-found]
    except ImportError:
        probe = None
    if probe is not None:
        try:
            info = probe(
                data,
                max_pixels=settings.max_source_pixels,
                max_frames=settings.max_source_frames,
            )
        except Exception as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int) and 400 <= status < 500:
                raise ApiError(status, str(getattr(exc, "message", exc))) from exc
            raise
        return ImageInfo(
            width=info.width,
            height=info.height,
            format=info.format,
            mimetype=info.mimetype,
            animated=info.animated,
            n_pages=info.n_pages,
            opaque=info.opaque,
            orientation=info.orientation,
        )
    return _fallback_probe(data, settings)


def _get(image: Any, name: str, default: Any) -> Any:
    return image.get(name) if image.get_typeof(name) != 0 else default


def _load(data: bytes, **kwargs: Any) -> Any:
    import pyvips

    try:
        image = pyvips.Image.new_from_buffer(data, "", **kwargs)
    except pyvips.Error as exc:
        raise ApiError(422, "Not an image, or an unsupported image format") from exc
    if image.get("vips-loader") not in _LOADERS:
        raise ApiError(422, "Unsupported image format")
    return image


def _fallback_probe(data: bytes, settings: Settings) -> ImageInfo:
    import pyvips

    header = _load(data)
    fmt, mimetype = _LOADERS[header.get("vips-loader")]
    if fmt == "heic" and _get(header, "heif-compression", "hevc") == "av1":
        fmt, mimetype = "avif", "image/avif"
    n_pages = int(_get(header, "n-pages", 1))
    animated = fmt in _ANIMATABLE and n_pages > 1
    frames = n_pages if animated else 1
    if frames > settings.max_source_frames:
        raise ApiError(422, f"Too many frames ({frames} > {settings.max_source_frames})")
    pixels = header.width * header.height * frames
    if pixels > settings.max_source_pixels:
        raise ApiError(
            422,
            f"Image has too many pixels ({header.width}x{header.height}x{frames}"
            f" > {settings.max_source_pixels})",
        )
    orientation = int(_get(header, "orientation", 1))
    if not 1 <= orientation <= 8:
        orientation = 1
    options: dict[str, Any] = {"access": "sequential", "fail_on": "error"}
    if animated:
        options["n"] = -1
    full = _load(data, **options)
    try:
        # One streaming pass decodes every pixel (catching truncation); the alpha
        # minimum answers "opaque" at the same time.
        if full.hasalpha():
            limit = 65535 if full.format == "ushort" else 255
            opaque = full[full.bands - 1].min() >= limit
        else:
            full.avg()
            opaque = True
    except pyvips.Error as exc:
        raise ApiError(422, "Broken or truncated image") from exc
    width, height = header.width, header.height
    if orientation >= 5:  # 5-8 rotate by 90 degrees: displayed sideways
        width, height = height, width
    return ImageInfo(
        width=width,
        height=height,
        format=fmt,
        mimetype=mimetype,
        animated=animated,
        n_pages=n_pages,
        opaque=bool(opaque),
        orientation=orientation,
    )
