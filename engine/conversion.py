"""``optimize_source``: TIFF and PSD originals stored as PNG, JPEG or WebP instead.

rokka recompresses TIFF and PSD sources when an upload sets ``optimize_source``: ``true``
or ``png`` losslessly to PNG, ``jpg`` to a high-quality JPEG (WebP when the image has
visible transparency). Other formats are stored as uploaded. This runs in a render process
(engine/worker.py) like the upload check, within the render pixel budget.
"""

from __future__ import annotations

from dataclasses import replace

import pyvips

from engine import foreign
from engine.errors import TooManyPixels, UnsupportedImage
from engine.operations.context import to_srgb
from engine.probe import ImageInfo

#: Source formats that are converted; everything else is kept as it is.
CONVERTED = frozenset({"tiff", "psd"})
#: ``optimize_source`` values after parsing: the target of the conversion.
TARGETS = frozenset({"png", "jpg"})
#: Quality of the JPEG/WebP a ``jpg`` conversion stores (1-100).
LOSSY_QUALITY = 95


def converts(info: ImageInfo, target: str | None) -> bool:
    """Whether an upload of ``info`` with ``optimize_source`` ``target`` is converted."""
    return target in TARGETS and info.format in CONVERTED


def optimise_source(
    data: bytes, info: ImageInfo, target: str, *, max_pixels: int
) -> tuple[bytes, ImageInfo]:
    """The converted file and its ImageInfo (same display size, new format). 8-bit sRGB:
    16-bit and CMYK sources are converted, so "lossless" holds for 8-bit RGB sources."""
    if info.width * info.height > max_pixels:
        raise TooManyPixels(
            f"image too large to optimise ({info.width}x{info.height} > {max_pixels} "
            "pixels); upload it without optimize_source"
        )
    try:
        if info.format == "psd":
            image = foreign.decode(data, "psd", None, max_pixels=max_pixels)
        else:
            image = pyvips.Image.new_from_buffer(data, "", fail_on="error").autorot()
            if image.get_typeof("icc-profile-data") != 0:
                try:
                    image = image.icc_transform("srgb", embedded=True, intent="perceptual")
                except pyvips.Error:
                    pass  # a broken profile: keep the interpretation libvips guessed
        image = to_srgb(image)
        opaque = not image.hasalpha() or image[image.bands - 1].min() >= 255
        if opaque and image.hasalpha():
            image = image[: image.bands - 1]
        if target == "png":
            body, fmt, mime = image.pngsave_buffer(compression=6, keep="none"), "png", "image/png"
        elif opaque:
            body = image.jpegsave_buffer(Q=LOSSY_QUALITY, optimize_coding=True, keep="none")
            fmt, mime = "jpg", "image/jpeg"
        else:
            body = image.webpsave_buffer(Q=LOSSY_QUALITY, keep="none")
            fmt, mime = "webp", "image/webp"
    except pyvips.Error as exc:
        raise UnsupportedImage("broken or truncated image") from exc
    converted = replace(
        info,
        width=image.width,
        height=image.height,
        format=fmt,
        mimetype=mime,
        opaque=opaque,
        orientation=1,
        whole_frame_decode=False,
        animated=False,
        n_pages=1,
    )
    return bytes(body), converted
