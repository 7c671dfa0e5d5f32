"""IIIF Image API 3.0 requests: ``{region}/{size}/{rotation}/{quality}.{format}`` parsed
against an image's size, and turned into an ordinary render plan.

Pure geometry and validation (no Flask, no libvips): the route (webapp/routes/iiif.py)
finds the image, this module answers the plan, the engine renders it like any other. Every
malformed or impossible parameter is an :class:`IiifError` (400). The numbers follow the
specification (https://iiif.io/api/image/3.0/); rokka's limit of 2048 pixels per edge and
2048x2048 in area is the service's ``maxWidth``/``maxHeight``/``maxArea``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from stacks.errors import StackError
from stacks.plan import RenderPlan
from stacks.resolve import build_plan
from stacks.stack import parse_stack_json
from stacks.url import RenderRequest

MAX_EDGE = 2048
MAX_AREA = MAX_EDGE * MAX_EDGE
TILE = 512

#: Output formats (extension -> rokka output format) and qualities this service renders.
FORMATS: dict[str, str] = {"jpg": "jpg", "png": "png", "webp": "webp", "gif": "gif"}
QUALITIES: tuple[str, ...] = ("default", "color", "gray")
#: Features beyond level 1 (IIIF 3.0 §6), listed in info.json's ``extraFeatures``.
EXTRA_FEATURES: tuple[str, ...] = (
    "regionByPct",
    "sizeByPct",
    "sizeByConfinedWh",
    "sizeUpscaling",
    "rotationBy90s",
    "rotationArbitrary",
)

# Largest crop anchor rokka's grammar takes (pixels); regions starting further in are cut
# from the bottom-right corner first (see ``_operations``).
_MAX_ANCHOR = 10_000
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_PIXELS = re.compile(r"^(\d{1,9}),(\d{1,9}),(\d{1,9}),(\d{1,9})$")
_PERCENT = re.compile(rf"^pct:({_NUMBER}),({_NUMBER}),({_NUMBER}),({_NUMBER})$")
_SIZE_WH = re.compile(r"^(!)?(\d{1,9})?,(\d{1,9})?$")
_SIZE_PCT = re.compile(rf"^pct:({_NUMBER})$")
_ROTATION = re.compile(rf"^(!)?({_NUMBER})$")


class IiifError(StackError):
    """A request parameter that is malformed or can't be served (400)."""


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle of the source, in source pixels (display orientation)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class IiifRequest:
    """A parsed and resolved image request: the region of the source, the output size
    (pixels, before rotation), the clockwise rotation in degrees (0 to under 360), the
    quality and the output format (a rokka output extension)."""

    region: Region
    width: int
    height: int
    rotation: float
    quality: str
    output_format: str


def parse(path: str, image_width: int, image_height: int) -> IiifRequest:
    """``region/size/rotation/quality.format`` against an image of that size (pixels)."""
    parts = path.split("/")
    if len(parts) != 4:
        raise IiifError("an IIIF image request is {region}/{size}/{rotation}/{quality}.{format}")
    region_text, size_text, rotation_text, last = parts
    quality, dot, fmt = last.rpartition(".")
    if not dot:
        raise IiifError("the quality needs a format extension, e.g. default.jpg")
    if fmt not in FORMATS:
        raise IiifError(f"unsupported format; supported: {', '.join(FORMATS)}")
    if quality not in QUALITIES:
        raise IiifError(f"unsupported quality; supported: {', '.join(QUALITIES)}")
    region = parse_region(region_text, image_width, image_height)
    width, height = parse_size(size_text, region)
    return IiifRequest(
        region=region,
        width=width,
        height=height,
        rotation=parse_rotation(rotation_text),
        quality=quality,
        output_format=FORMATS[fmt],
    )


def parse_region(text: str, image_width: int, image_height: int) -> Region:
    """``full``, ``square`` (centred), ``x,y,w,h`` or ``pct:x,y,w,h``, clipped to the image;
    a region that starts outside the image or has no pixels is an IiifError."""
    if text == "full":
        return Region(0, 0, image_width, image_height)
    if text == "square":
        side = min(image_width, image_height)
        return Region((image_width - side) // 2, (image_height - side) // 2, side, side)
    pixels = _PIXELS.match(text)
    if pixels:
        x, y, w, h = (int(v) for v in pixels.groups())
    else:
        percent = _PERCENT.match(text)
        if percent is None:
            raise IiifError("region must be full, square, x,y,w,h or pct:x,y,w,h")
        px, py, pw, ph = (float(v) for v in percent.groups())
        if max(px, py) >= 100:
            raise IiifError("region starts outside the image")
        x, y = math.floor(px * image_width / 100), math.floor(py * image_height / 100)
        w = round(pw * image_width / 100)
        h = round(ph * image_height / 100)
    if w == 0 or h == 0:
        raise IiifError("region has no pixels")
    if x >= image_width or y >= image_height:
        raise IiifError("region starts outside the image")
    return Region(x, y, min(w, image_width - x), min(h, image_height - y))


def parse_size(text: str, region: Region) -> tuple[int, int]:
    """Output width and height for a size parameter (``max``, ``w,``, ``,h``, ``pct:n``,
    ``w,h``, ``!w,h``, each optionally ``^``-prefixed to allow upscaling), within
    ``MAX_EDGE`` per side and ``MAX_AREA`` in area."""
    upscale = text.startswith("^")
    body = text[1:] if upscale else text
    rw, rh = region.width, region.height
    if body == "max":
        scale = _max_scale(rw, rh)
        if not upscale:
            scale = min(scale, 1.0)
        return _checked(_scaled(rw, scale), _scaled(rh, scale), region, upscale)
    percent = _SIZE_PCT.match(body)
    if percent:
        scale = float(percent.group(1)) / 100
        return _checked(_scaled(rw, scale), _scaled(rh, scale), region, upscale)
    match = _SIZE_WH.match(body)
    if match is None:
        raise IiifError("size must be max, w,, ,h, pct:n, w,h or !w,h (^ to upscale)")
    confined, w_text, h_text = match.groups()
    if w_text is None and h_text is None:
        raise IiifError("size needs a width or a height")
    if confined:
        if w_text is None or h_text is None:
            raise IiifError("!w,h needs both a width and a height")
        # A best fit bigger than the region is an upscale: 400 without ^, as the official
        # validator requires (size_noup), even though the text would allow the region size.
        scale = min(int(w_text) / rw, int(h_text) / rh)
        return _checked(_scaled(rw, scale), _scaled(rh, scale), region, upscale)
    if w_text is None:
        h = int(h_text)  # type: ignore[arg-type]
        return _checked(_scaled(rw, h / rh), h, region, upscale)
    if h_text is None:
        w = int(w_text)
        return _checked(w, _scaled(rh, w / rw), region, upscale)
    return _checked(int(w_text), int(h_text), region, upscale)


def _scaled(length: int, scale: float) -> int:
    return max(1, round(length * scale)) if scale > 0 else 0


def _max_scale(width: int, height: int) -> float:
    return min(MAX_EDGE / width, MAX_EDGE / height, math.sqrt(MAX_AREA / (width * height)))


def _checked(width: int, height: int, region: Region, upscale: bool) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise IiifError("size has no pixels")
    if not upscale and (width > region.width or height > region.height):
        raise IiifError("size is larger than the region; use ^ to upscale")
    if width > MAX_EDGE or height > MAX_EDGE or width * height > MAX_AREA:
        raise IiifError(f"size is larger than {MAX_EDGE} pixels per side (maxWidth/maxHeight)")
    return width, height


def parse_rotation(text: str) -> float:
    """Clockwise degrees, 0 to 360 (360 is 0); mirroring (``!``) is not supported."""
    match = _ROTATION.match(text)
    if match is None:
        raise IiifError("rotation must be a number of degrees from 0 to 360")
    if match.group(1):
        raise IiifError("mirroring (!) is not supported")
    degrees = float(match.group(2))
    if degrees > 360:
        raise IiifError("rotation must be a number of degrees from 0 to 360")
    return degrees % 360


def plan(request: IiifRequest, image_width: int, image_height: int) -> RenderPlan:
    """The render plan for ``request`` on an image of that size: rokka operations
    (``resize``, ``crop``, ``rotate``, ``grayscale``), validated like any stack."""
    # Parsed as a stack so every operation is validated exactly like a stored one; the
    # name is only a label here (``_iiif`` itself is reserved for stored stacks).
    stack = parse_stack_json(
        {"operations": _operations(request, image_width, image_height), "options": {}}, "iiif"
    )
    url = RenderRequest(stack="iiif", hash="0" * 40, output_format=request.output_format)
    return build_plan(stack, url)


def _operations(request: IiifRequest, image_width: int, image_height: int) -> list[dict[str, Any]]:
    region, width, height = request.region, request.width, request.height
    whole = (region.width, region.height) == (image_width, image_height)
    sx, sy = width / region.width, height / region.height
    full_w, full_h = round(image_width * sx), round(image_height * sy)
    ops: list[dict[str, Any]] = []
    if not whole and sx < 1 and sy < 1 and max(full_w, full_h) <= _MAX_ANCHOR:
        # Shrink first, then cut: the decoder can shrink on load (JPEG DCT scaling), so a
        # region of a large image costs the scaled image, not the full one.
        ops.append(_resize(max(1, full_w), max(1, full_h)))
        x = min(round(region.x * sx), full_w - width)
        y = min(round(region.y * sy), full_h - height)
        ops.append(_crop(width, height, max(0, x), max(0, y)))
    else:
        if not whole:
            if region.x > _MAX_ANCHOR or region.y > _MAX_ANCHOR:
                # rokka's anchor stops at 10000 px: cut the corner from the bottom-right
                # first, so the region then starts at 0,0.
                ops.append(
                    _crop(image_width - region.x, image_height - region.y, "right", "bottom")
                )
                ops.append(_crop(region.width, region.height, 0, 0))
            else:
                ops.append(_crop(region.width, region.height, region.x, region.y))
        if (width, height) != (region.width, region.height):
            ops.append(_resize(width, height))
    if request.rotation:
        ops.append({"name": "rotate", "options": {"angle": request.rotation}})
    if request.quality == "gray":
        ops.append({"name": "grayscale"})
    return ops or [{"name": "noop"}]


def _resize(width: int, height: int) -> dict[str, Any]:
    return {
        "name": "resize",
        "options": {"width": width, "height": height, "mode": "absolute", "upscale": True},
    }


def _crop(width: int, height: int, x: int | str, y: int | str) -> dict[str, Any]:
    return {
        "name": "crop",
        "options": {"width": width, "height": height, "anchor": f"{x}_{y}", "mode": "absolute"},
    }


def info(base_uri: str, width: int, height: int) -> dict[str, Any]:
    """The ``info.json`` document of an image of that size (pixels) served at
    ``base_uri``: level 1 with the extras of ``EXTRA_FEATURES``, ``FORMATS``, ``QUALITIES``,
    and 512-pixel tiles at every power-of-two scale down to one tile."""
    factors = [1]
    while max(width, height) / factors[-1] > TILE and len(factors) < 16:
        factors.append(factors[-1] * 2)
    sizes = []
    for factor in reversed(factors):
        w, h = math.ceil(width / factor), math.ceil(height / factor)
        if w <= MAX_EDGE and h <= MAX_EDGE and w * h <= MAX_AREA:
            sizes.append({"width": w, "height": h})
    return {
        "@context": "http://iiif.io/api/image/3/context.json",
        "id": base_uri,
        "type": "ImageService3",
        "protocol": "http://iiif.io/api/image",
        "profile": "level1",
        "width": width,
        "height": height,
        "maxWidth": MAX_EDGE,
        "maxHeight": MAX_EDGE,
        "maxArea": MAX_AREA,
        "sizes": sizes,
        "tiles": [{"width": TILE, "height": TILE, "scaleFactors": factors}],
        "extraFormats": [f for f in FORMATS if f != "jpg"],
        "extraQualities": [q for q in QUALITIES if q != "default"],
        "extraFeatures": list(EXTRA_FEATURES),
    }
