"""Reading what an uploaded file is, safely, and process-wide libvips settings.

Rules (docs/engine.md "Limits"): load only from a buffer (never a path: file loaders can
reach sibling files), check the loader against an allow-list, refuse oversized images from
the header alone, then decode everything with ``fail_on="error"`` to reject broken files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyvips

from engine import foreign
from engine.errors import TooManyPixels, UnsupportedImage, UnsupportedMediaType
from engine.geometry import Size, oriented_size

# libvips loader nickname -> (ext, mimetype). HEIF is split into avif/heic below.
LOADERS: dict[str, tuple[str, str]] = {
    "jpegload_buffer": ("jpg", "image/jpeg"),
    "pngload_buffer": ("png", "image/png"),
    "webpload_buffer": ("webp", "image/webp"),
    "gifload_buffer": ("gif", "image/gif"),
    "heifload_buffer": ("heic", "image/heic"),
    "tiffload_buffer": ("tiff", "image/tiff"),
    "svgload_buffer": ("svg", "image/svg+xml"),
}
_ANIMATABLE = frozenset({"gif", "webp"})

DEFAULT_MAX_PIXELS = 225_000_000
DEFAULT_MAX_FRAMES = 1000


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the web layer stores about a source image.

    ``width``/``height`` are in display orientation (EXIF orientation applied) and for
    animations the size of one frame. ``opaque`` is False when an alpha channel has any
    value below 255. ``orientation`` is the EXIF value 1-8 (1 when absent).
    """

    width: int
    height: int
    format: str
    mimetype: str
    animated: bool
    n_pages: int
    opaque: bool
    orientation: int
    whole_frame_decode: bool = False

    @property
    def size(self) -> Size:
        return Size(self.width, self.height)


def configure(concurrency: int = 1) -> None:
    """Process-wide libvips settings. Call once per process, after any fork, before use.

    Turns the operation cache off (one-shot renders gain nothing and it pins big images),
    sets libvips' own worker threads (parallelism comes from request threads), and blocks
    untrusted loaders. SVG stays loadable from *buffers only*: from a buffer librsvg has no
    base directory, so ``<image href>`` cannot read other files, and it never fetches URLs.
    """
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(concurrency)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoadSvgBuffer", False)


def _loader_for(prefix: bytes) -> str | None:
    found = pyvips.vips_lib.vips_foreign_find_load_buffer(prefix, len(prefix))
    return None if found == pyvips.ffi.NULL else pyvips.ffi.string(found).decode()


# Loaders whose header read costs a few kilobytes whatever the file holds. The others
# (SVG parses the whole document, GIF walks every frame, TIFF every directory, HEIF its
# boxes) cost what the file costs: read them only where the render budgets apply.
_CHEAP_HEADERS = frozenset(
    {"VipsForeignLoadJpegBuffer", "VipsForeignLoadPngBuffer", "VipsForeignLoadWebpBuffer"}
)


def header_is_cheap(prefix: bytes) -> bool:
    """Whether the file starting with ``prefix`` is a JPEG, PNG or WebP, whose header can
    be read anywhere (in a web worker) at a bounded cost."""
    return _loader_for(prefix) in _CHEAP_HEADERS


def header_in_head(prefix: bytes) -> bool:
    """Whether the file starting with ``prefix`` is a JPEG: everything its header tells
    (size, orientation, progressive) is in the markers before its pixel data, so a long
    enough head of the file reads the same header as the whole file (a head cut inside
    the markers fails to load, never loads differently)."""
    return _loader_for(prefix) == "VipsForeignLoadJpegBuffer"


def is_svg(prefix: bytes) -> bool:
    """Whether libvips would load the file starting with ``prefix`` as SVG."""
    return _loader_for(prefix) == "VipsForeignLoadSvgBuffer"


def recognised(prefix: bytes) -> bool:
    """Whether libvips has a (trusted) loader for a file starting with ``prefix``.

    Uses only libvips' magic-byte checks, so the first few hundred bytes of a file decide;
    a True here is not validation (``probe`` is), a False is a certain refusal. The
    formats of engine/foreign.py (JPEG XL, PDF, PSD) are recognised too.
    """
    return (
        _loader_for(prefix) is not None
        or foreign.sniff(prefix) is not None
        # libvips' TIFF check asks libtiff to read the first directory, which many writers
        # (libvips and libtiff among them) put after the pixel data: from a prefix only
        # the magic number can tell. The full probe validates the whole file later.
        or prefix[:4] in (b"II*\x00", b"MM\x00*")
    )


def refused_kind(prefix: bytes) -> str | None:
    """ "EPS" or "video" for files of a kind cropstack knowingly refuses (415), else None."""
    return foreign.refused_kind(prefix)


# Loaders of formats whose header comes first in the file: a long enough prefix of any
# real file of theirs has a readable header. (TIFF may keep its directory at the end,
# HEIF its metadata after the pixel data, SVG is text: a prefix proves nothing for them.)
_HEADER_FIRST = frozenset(
    {
        "VipsForeignLoadJpegBuffer",
        "VipsForeignLoadPngBuffer",
        "VipsForeignLoadNsgifBuffer",
        "VipsForeignLoadWebpBuffer",
    }
)


def header_in_prefix(prefix: bytes) -> bool:
    """False when ``prefix``, the first bytes of a file (16 MB is ample: JPEG metadata
    segments are at most 64 KB each), is of a header-first format (JPEG, PNG, GIF, WebP)
    whose header cannot be read from it; True otherwise (including "cannot tell")."""
    if _loader_for(prefix) not in _HEADER_FIRST:
        return True
    try:
        pyvips.Image.new_from_buffer(prefix, "")
    except pyvips.Error:
        return False
    return True


def load_from_memory(data: bytes, **kwargs: object) -> pyvips.Image:
    """``data`` (a whole file's bytes) opened as an image, lazily, without a copy:
    pyvips' ``new_from_buffer`` first copies the whole file into a blob libvips owns (a
    6 MB original: 0.8 ms and 6 MB more, twice per render), a memory source only refers
    to the bytes (the image keeps them alive). Same loaders, same options. JPEG and PNG
    only (the large files): libvips finds no SVG in a source, and others gain little."""
    if data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n":
        return pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "", **kwargs)
    return pyvips.Image.new_from_buffer(data, "", **kwargs)


def loader_name(image: pyvips.Image) -> str:
    """The libvips loader of ``image`` by its buffer name (``jpegload_buffer``), also when
    it was opened from a memory source (``jpegload_source``, :func:`load_from_memory`)."""
    name = str(image.get("vips-loader"))
    return name.removesuffix("_source") + "_buffer" if name.endswith("_source") else name


def _header(data: bytes, **kwargs: object) -> pyvips.Image:
    if not data:
        raise UnsupportedImage("empty file")
    kind = foreign.refused_kind(data[:64])
    if kind is not None:
        raise UnsupportedMediaType(f"{kind} files are not supported as source images")
    try:
        image = load_from_memory(data, **kwargs)
    except pyvips.Error as exc:
        raise UnsupportedImage("not an image, or an unsupported format") from exc
    if loader_name(image) not in LOADERS:
        raise UnsupportedImage("unsupported image format")
    return image


def loader_ext(image: pyvips.Image) -> tuple[str, str]:
    """(ext, mimetype) of a loaded image; HEIF files are avif or heic by their codec."""
    ext, mime = LOADERS[loader_name(image)]
    if ext == "heic" and _get(image, "heif-compression", "hevc") == "av1":
        return "avif", "image/avif"
    return ext, mime


def _get(image: pyvips.Image, name: str, default: object) -> object:
    return image.get(name) if image.get_typeof(name) != 0 else default


def inspect(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> ImageInfo:
    """Identify an image from its header only (no pixel decode), enforcing the limits.

    Like :func:`probe` but without validating the pixel data; ``opaque`` is only "has no
    alpha band". Used by render when the caller has no stored ImageInfo.
    """
    other = foreign.sniff(data[:64]) if _loader_for(data[:4096]) is None else None
    if other is not None:
        return _foreign_info(data, other, max_pixels=max_pixels)
    header = _header(data)
    ext, mime = loader_ext(header)
    n_pages = int(_get(header, "n-pages", 1))  # type: ignore[call-overload]
    animated = ext in _ANIMATABLE and n_pages > 1
    frames = n_pages if animated else 1
    if frames > max_frames:
        raise TooManyPixels(f"too many frames ({frames} > {max_frames})")
    if header.width * header.height * frames > max_pixels:
        raise TooManyPixels(
            f"image too large ({header.width}x{header.height}x{frames} > {max_pixels} pixels)"
        )
    orientation = int(_get(header, "orientation", 1))  # type: ignore[call-overload]
    if not 1 <= orientation <= 8:
        orientation = 1
    display = oriented_size(Size(header.width, header.height), orientation)
    return ImageInfo(
        width=display.width,
        height=display.height,
        format=ext,
        mimetype=mime,
        animated=animated,
        n_pages=n_pages,
        opaque=not header.hasalpha(),
        orientation=orientation,
        whole_frame_decode=ext in _WHOLE_IMAGE_DECODERS
        or (ext == "jpg" and _get(header, "jpeg-multiscan", 0) == 1)
        or (ext == "png" and _get(header, "interlaced", 0) == 1),
    )


def _foreign_info(data: bytes, fmt: str, *, max_pixels: int) -> ImageInfo:
    declared = foreign.header(data, fmt)
    if declared.width * declared.height > max_pixels:
        raise TooManyPixels(
            f"image too large ({declared.width}x{declared.height} > {max_pixels} pixels)"
        )
    return ImageInfo(
        width=declared.width,
        height=declared.height,
        format=fmt,
        mimetype=foreign.MIMETYPES[fmt],
        animated=False,
        n_pages=declared.pages,
        opaque=not declared.has_alpha,
        orientation=1,
        whole_frame_decode=True,  # every foreign decoder holds the whole image
    )


# Formats whose decoder may hold the whole image in memory whatever scale is asked: HEIF
# always; WebP too (a lossless 15000x15000 WebP decoded at 1/8 scale took 939 MB resident);
# GIF, whose decoder paints every frame on a whole canvas; progressive JPEG, whose decoder
# keeps every DCT coefficient (a 1.3 MB progressive 15000x15000 JPEG took 692 MB); and
# interlaced PNG, deinterlaced in memory (657 KB of 15000x15000: 687 MB). What they declare
# must fit the render pixel budget, or no render could decode them safely.
_WHOLE_IMAGE_DECODERS = frozenset({"heic", "avif", "webp", "gif"})
# Pixels the upload check decodes of a format that can shrink while decoding (every
# compressed byte is still read, so a broken file is still found).
_CHECK_PIXELS = 4_000_000


def probe(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_decode_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageInfo:
    """Identify and fully validate an image held in memory (for uploads).

    Raises UnsupportedImage (422) for non-images, formats outside the allow-list and
    broken/truncated files; TooManyPixels (422) when width x height x frames exceeds
    ``max_pixels`` or the frame count exceeds ``max_frames``, decided from the header
    before any pixel is decoded, and when a format that must be decoded whole (HEIF/AVIF)
    declares more than ``max_decode_pixels`` per frame (the render pixel budget), and for
    WebP likewise (see ``check_decodable``).

    The check decodes every compressed byte within bounded memory: JPEG at 1/8 scale and
    WebP/SVG at most ~4 MP (the decoders shrink while decoding), the others streamed.
    """
    info = inspect(data, max_pixels=max_pixels, max_frames=max_frames)
    check_decodable(info, max_decode_pixels)
    if foreign.decodes(info.format):
        return replace(
            info,
            opaque=_opaque(foreign.decode(data, info.format, {}, max_pixels=max_decode_pixels)),
        )
    kwargs: dict[str, object] = {"access": "sequential"}
    if info.format != "svg":
        kwargs["fail_on"] = "error"
    if info.animated:
        kwargs["n"] = -1
    kwargs.update(_check_scale(info))
    full = _header(data, **kwargs)
    try:
        # One streaming pass decodes every pixel; the alpha minimum answers "opaque".
        if full.hasalpha():
            alpha = full[full.bands - 1]
            limit = 65535 if full.format == "ushort" else 255
            opaque = alpha.min() >= limit
        else:
            full.avg()
            opaque = True
    except pyvips.Error as exc:
        raise UnsupportedImage("broken or truncated image") from exc
    return replace(info, opaque=opaque)


def _opaque(image: pyvips.Image) -> bool:
    """Whether no alpha value of an 8-bit image is below 255 (True without alpha)."""
    return not image.hasalpha() or image[image.bands - 1].min() >= 255


def check_decodable(info: ImageInfo, max_decode_pixels: int) -> None:
    """TooManyPixels (422) when ``info`` is decoded a whole frame at a time (HEIF/AVIF,
    WebP, GIF, progressive JPEG, interlaced PNG) and one frame has more than
    ``max_decode_pixels`` pixels; from the header alone."""
    if info.whole_frame_decode and info.width * info.height > max_decode_pixels:
        kind = {"jpg": "progressive jpg", "png": "interlaced png"}.get(info.format, info.format)
        raise TooManyPixels(
            f"image too large to decode ({info.width}x{info.height} > {max_decode_pixels} "
            f"pixels for {kind})"
        )


def _check_scale(info: ImageInfo) -> dict[str, object]:
    """Loader options that shrink the upload check's decode where the format allows it."""
    pixels = info.width * info.height
    if info.format == "jpg":
        return {"shrink": 8}
    if info.format in ("webp", "svg") and pixels > _CHECK_PIXELS:
        return {"scale": (_CHECK_PIXELS / pixels) ** 0.5}
    return {}
