"""Formats the bundled libvips can't decode or encode, through well-kept PyPI codecs.

- HEIC (HEVC-coded HEIF) in and out: ``pillow-heif`` (libheif with libde265 and x265). The
  bundled libheif has only the AV1 codecs, so it reads an HEIC header but no pixel.
- JPEG XL in and out: ``pillow-jxl-plugin`` (libjxl).
- PDF in (one page, at ``pdf.dpi``): ``pypdfium2`` (PDFium, the renderer of Chromium).
- PSD in (the composite image Photoshop stores beside the layers): ``psd-tools``.

Each decoder runs only in a render process (engine/worker.py), on bytes in memory (never
a path), after its size was checked against the budgets from the header: these decoders
hold the whole image, so the caller treats them as whole-frame decoders. The result is a
libvips memory image in sRGB, 8 bits per channel, alpha kept, in display orientation.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvips

from engine.errors import BadSourceOption, TooManyPixels, UnsupportedImage

MIMETYPES: dict[str, str] = {
    "heic": "image/heic",
    "jxl": "image/jxl",
    "pdf": "application/pdf",
    "psd": "image/vnd.adobe.photoshop",
}
#: Decoded by this module in every case (HEIC only when libvips can't: see ``decodes``).
SOURCES = frozenset({"jxl", "pdf", "psd"})
#: Encoded by this module when libvips has no working encoder.
OUTPUTS = frozenset({"heic", "jxl"})

PDF_DEFAULT_DPI = 200
_PDF_POINTS_PER_INCH = 72
_PDF_MIN_WIDTH = 1000  # rokka: a page narrower than this at pdf.dpi is rendered at twice it
_JXL_CODESTREAM = b"\xff\x0a"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


@dataclass(frozen=True, slots=True)
class Header:
    """What a foreign file declares: width and height in pixels (display orientation, at
    the default ``pdf.dpi`` for PDF), page count, and whether it has alpha."""

    format: str
    width: int
    height: int
    pages: int
    has_alpha: bool


def sniff(prefix: bytes) -> str | None:
    """``jxl``, ``pdf`` or ``psd`` when ``prefix`` (the first bytes) starts such a file."""
    if prefix.startswith(_JXL_CODESTREAM) or prefix.startswith(_JXL_CONTAINER):
        return "jxl"
    if prefix.startswith(b"%PDF-"):
        return "pdf"
    if prefix.startswith(b"8BPS\x00\x01"):  # PSD version 1 (PSB, version 2, is refused)
        return "psd"
    return None


def refused_kind(prefix: bytes) -> str | None:
    """A name for known formats cropstack refuses as sources (EPS, video), else None."""
    if prefix.startswith(b"%!PS") or prefix.startswith(b"\xc5\xd0\xd3\xc6"):
        return "EPS"
    if prefix[4:8] == b"ftyp" and prefix[8:12] in (
        b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"M4V ", b"avc1", b"dash", b"3gp4", b"3gp5"
    ):  # fmt: skip
        return "video"
    if prefix.startswith(b"\x1aE\xdf\xa3"):  # Matroska / WebM
        return "video"
    return None


def header(data: bytes, fmt: str, options: Mapping[str, Any] | None = None) -> Header:
    """The declared size of a ``jxl``/``pdf``/``psd`` file without decoding pixels (for PDF
    the page ``pdf.page`` at ``pdf.dpi`` of ``options``). UnsupportedImage when unreadable."""
    try:
        if fmt == "psd":
            return _psd_header(data)
        if fmt == "pdf":
            return _pdf_header(data, options or {})
        if fmt == "jxl":
            return _pil_header(data, fmt)
    except (UnsupportedImage, BadSourceOption):
        raise
    except Exception as exc:  # each library has its own errors; all mean "unreadable"
        raise UnsupportedImage(f"broken or unsupported {fmt} file") from exc
    raise UnsupportedImage(f"unsupported image format {fmt}")


def decode(
    data: bytes, fmt: str, options: Mapping[str, Any] | None, *, max_pixels: int
) -> pyvips.Image:
    """The pixels of a foreign file (HEIC, JXL, PDF page, PSD composite), refusing with
    TooManyPixels first when they would exceed ``max_pixels``."""
    declared = header(data, fmt, options) if fmt != "heic" else None
    if declared is not None and declared.width * declared.height > max_pixels:
        raise TooManyPixels(
            f"image too large to decode ({declared.width}x{declared.height} > "
            f"{max_pixels} pixels for {fmt})"
        )
    try:
        if fmt == "heic":
            pixels = _heic_pixels(data, max_pixels)
        elif fmt == "jxl":
            pixels = _pil_pixels(_pil_open(data))
        elif fmt == "pdf":
            pixels = _pdf_pixels(data, options or {})
        elif fmt == "psd":
            pixels = _psd_pixels(data)
        else:
            raise UnsupportedImage(f"unsupported image format {fmt}")
    except (UnsupportedImage, TooManyPixels, BadSourceOption):
        raise
    except Exception as exc:
        raise UnsupportedImage(f"broken or unsupported {fmt} file") from exc
    image = pyvips.Image.new_from_array(np.ascontiguousarray(pixels))
    return image.copy(interpretation="srgb")


def encode(image: pyvips.Image, fmt: str, quality: int) -> bytes:
    """``image`` (8-bit sRGB, 3 or 4 bands) as HEIC or JPEG XL at ``quality`` (1-100;
    100 is lossless)."""
    array = image.numpy()
    if array.ndim == 2:
        array = array[:, :, None]
    from PIL import Image

    picture = Image.fromarray(array, "RGBA" if array.shape[2] == 4 else "RGB")
    out = io.BytesIO()
    if fmt == "heic":
        import pillow_heif

        heif = pillow_heif.from_pillow(picture)
        heif.save(out, quality=-1 if quality >= 100 else quality)
    elif fmt == "jxl":
        import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)

        picture.save(out, format="JXL", quality=quality, lossless=quality >= 100)
    else:
        raise ValueError(f"no foreign encoder for {fmt}")
    return out.getvalue()


def decodes(fmt: str) -> bool:
    """Whether pixels of ``fmt`` come from this module: JXL, PDF, PSD always; HEIC when the
    bundled libvips can't decode HEVC (checked once per process)."""
    return fmt in SOURCES or (fmt == "heic" and not _libvips_decodes_hevc())


_HEVC: list[bool] = []


def _libvips_decodes_hevc() -> bool:
    if not _HEVC:
        try:
            sample = (pyvips.Image.black(16, 16, bands=3) + 100).cast("uchar")
            data = sample.heifsave_buffer(compression="hevc")
            pyvips.Image.new_from_buffer(data, "").avg()
            _HEVC.append(True)
        except pyvips.Error:
            _HEVC.append(False)
    return _HEVC[0]


# -- PSD ------------------------------------------------------------------------------------

_PSD_MODES = {1: "grayscale", 3: "rgb", 4: "cmyk"}


def _psd_header(data: bytes) -> Header:
    if len(data) < 26:
        raise UnsupportedImage("truncated psd file")
    channels, height, width, depth, mode = struct.unpack(">HIIHH", data[12:26])
    if mode not in _PSD_MODES or depth not in (8, 16) or not (width and height):
        raise UnsupportedImage("unsupported psd file (only 8/16-bit grey, RGB and CMYK)")
    colour = {"grayscale": 1, "rgb": 3, "cmyk": 4}[_PSD_MODES[mode]]
    return Header("psd", width, height, 1, channels > colour)


def _psd_pixels(data: bytes) -> np.ndarray:
    from psd_tools import PSDImage

    psd = PSDImage.open(io.BytesIO(data))
    # The composite Photoshop saved beside the layers ("maximise compatibility"); without
    # it psd-tools composites the layers itself, within the same pixel budget.
    picture = psd.topil() or psd.composite()
    if picture is None:
        raise UnsupportedImage("psd file without a composite image")
    return _pil_pixels(picture)


# -- PDF ------------------------------------------------------------------------------------


def pdf_dpi(width_points: float, options: Mapping[str, Any]) -> float:
    """The resolution a page is rendered at: ``pdf.dpi`` (default 200), doubled when the
    page would be narrower than 1000 pixels, as rokka does."""
    dpi = float(options.get("pdf.dpi") or PDF_DEFAULT_DPI)
    if width_points * dpi / _PDF_POINTS_PER_INCH < _PDF_MIN_WIDTH:
        dpi *= 2
    return dpi


def _pdf_page(data: bytes, options: Mapping[str, Any]) -> tuple[Any, Any, int]:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data)
    pages = len(document)
    number = int(options.get("pdf.page") or 1)
    if not 1 <= number <= pages:
        document.close()
        raise BadSourceOption(f"pdf.page {number} is not a page of this PDF ({pages} pages)")
    return document, document[number - 1], pages


def _pdf_header(data: bytes, options: Mapping[str, Any]) -> Header:
    document, page, pages = _pdf_page(data, options)
    try:
        width, height = page.get_size()
        dpi = pdf_dpi(width, options)
        scale = dpi / _PDF_POINTS_PER_INCH
        # PDFium's bitmap is the page size times the scale, rounded up
        size = (max(1, math.ceil(width * scale - 1e-6)), max(1, math.ceil(height * scale - 1e-6)))
        return Header("pdf", size[0], size[1], pages, False)
    finally:
        page.close()
        document.close()


def _pdf_pixels(data: bytes, options: Mapping[str, Any]) -> np.ndarray:
    document, page, _ = _pdf_page(data, options)
    try:
        width, _ = page.get_size()
        bitmap = page.render(scale=pdf_dpi(width, options) / _PDF_POINTS_PER_INCH)
        return _pil_pixels(bitmap.to_pil())
    finally:
        page.close()
        document.close()


# -- HEIC and JPEG XL -----------------------------------------------------------------------


def _heic_pixels(data: bytes, max_pixels: int) -> np.ndarray:
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    width, height = heif.size
    if width * height > max_pixels:
        raise TooManyPixels(
            f"image too large to decode ({width}x{height} > {max_pixels} pixels for heic)"
        )
    return _pil_pixels(heif.to_pillow())


def _pil_open(data: bytes) -> Any:
    import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)
    from PIL import Image

    return Image.open(io.BytesIO(data))


def _pil_header(data: bytes, fmt: str) -> Header:
    picture = _pil_open(data)
    width, height = picture.size
    return Header(fmt, width, height, 1, "A" in picture.getbands())


def _pil_pixels(picture: Any) -> np.ndarray:
    """8-bit RGB or RGBA pixels of a Pillow image (grey, palette, CMYK, 16-bit converted)."""
    mode = "RGBA" if "A" in picture.getbands() or "transparency" in picture.info else "RGB"
    return np.asarray(picture.convert(mode))
