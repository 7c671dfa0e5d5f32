"""rokka ``face``: put a secondary image (sunglasses, a hat, a moustache) onto every face
of the image, aligned to two of its landmarks.

The landmarks are the image's ``detection_eyemouth`` metadata (engine/landmarks.py),
stored by ``PUT …/meta/dynamic/detection_face`` and moved with the image by every earlier
operation (``RenderContext.areas.landmarks``). For each face that has both
``leftFeature`` L and ``rightFeature`` R:

- the secondary is scaled, aspect kept, to ``scale`` times the distance L-R wide (scale 1:
  as wide as the two features are apart), and turned by the angle of the line from L to R,
  so it tilts with the head;
- ``anchor`` says which point of the secondary sits where: ``left``, ``center`` or
  ``right`` put the secondary's left edge, middle or right edge on L, the midpoint of L-R
  or R; ``top``, ``center``, ``bottom`` put its top edge, middle or bottom edge on that
  line; a pixel anchor ``X_Y`` (pixels of the secondary as stored) puts that pixel on L.
  The default ``center_center`` centres the secondary between the two features.

The image keeps its size; what falls outside is cut off. A face without one of the two
features is left as it is, and so is an image whose detection found no landmarks; an
image that was never detected is a 400 saying so. Together the placed secondaries may
cover at most ``OVERLAY_SHARE`` of the image (else 400): that bounds the work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine import foreign
from engine.errors import BadSourceOption, OverBudget, RenderFailed
from engine.geometry import Box, Size, parse_anchor
from engine.landmarks import FEATURES
from engine.operations.context import RenderContext, size_of, to_srgb
from engine.operations.kind import OperationKind, megapixels, parameters

#: The placed secondaries together cover at most this share of the image's pixels.
OVERLAY_SHARE = 0.5
#: At most this many faces carry landmarks (engine/faces.py MAX_LANDMARK_FACES).
MAX_OVERLAYS = 8
# Turning a secondary interpolates each of its pixels from a random-access input (~30
# passes, as rotate); resizing and compositing it a few more.
_OVERLAY_PASSES = 34.0


@dataclass(frozen=True, slots=True)
class FaceParameters:
    """``secondary_image`` a hash as written in the options; ``leftFeature`` and
    ``rightFeature`` landmark names (engine/landmarks.py FEATURES); ``anchor`` X_Y (left,
    center, right or pixels x top, center, bottom or pixels); ``scale`` the secondary's
    width in units of the features' distance (0.01-10)."""

    secondary_image: str
    leftFeature: str  # noqa: N815 - rokka's spelling, as in the stack JSON
    rightFeature: str  # noqa: N815
    anchor: str
    scale: float


@dataclass(frozen=True, slots=True)
class Placement:
    """One secondary on one face: its size ``width`` x ``height`` (px, before turning),
    the clockwise ``angle`` (degrees) it is turned by about its point ``anchor`` (px of
    the sized secondary), which lands on ``target`` (px of the image)."""

    width: int
    height: int
    angle: float
    anchor: tuple[float, float]
    target: tuple[float, float]

    def matrix(self) -> tuple[float, float, float, float]:
        """The turn as an affine matrix (a, b, c, d): x' = a x + b y, y' = c x + d y."""
        rad = math.radians(self.angle)
        cos, sin = math.cos(rad), math.sin(rad)
        return cos, -sin, sin, cos

    def bounds(self) -> Box:
        """The turned secondary's bounding box on the image, px (may reach outside)."""
        a, b, c, d = self.matrix()
        ax, ay = self.anchor
        tx, ty = self.target
        xs, ys = [], []
        for x, y in ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height)):
            xs.append(tx + a * (x - ax) + b * (y - ay))
            ys.append(ty + c * (x - ax) + d * (y - ay))
        return Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def _coordinate(token: str, length: float, start: str, end: str, stored: float) -> float:
    """Where along the secondary (``length`` px) an anchor token points; a number is a
    pixel of the secondary as stored, ``stored`` its scale to the sized secondary."""
    if token == start:
        return 0.0
    if token == end:
        return length
    if token == "center":
        return length / 2
    return float(token) * stored


def placement(
    left: tuple[float, float], right: tuple[float, float], natural: Size, p: FaceParameters
) -> Placement | None:
    """How the secondary (display size ``natural``) sits on a face whose features are at
    ``left`` and ``right`` (px of the image); None when they are less than a pixel apart."""
    dx, dy = right[0] - left[0], right[1] - left[1]
    distance = math.hypot(dx, dy)
    if distance < 1:
        return None
    width = max(1, round(distance * p.scale))
    stored = width / natural.width
    height = max(1, round(natural.height * stored))
    parts = parse_anchor(p.anchor) or ("center", "center")
    anchor = (
        _coordinate(parts[0], width, "left", "right", stored),
        _coordinate(parts[1], height, "top", "bottom", stored),
    )
    if parts[0] == "right":
        target = right
    elif parts[0] == "center":
        target = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    else:
        target = left
    return Placement(width, height, math.degrees(math.atan2(dy, dx)), anchor, target)


def _placements(
    image: Size, natural: Size, p: FaceParameters, ctx: RenderContext
) -> list[Placement]:
    """Where the secondary goes on each face that has both features, or a 400."""
    faces = ctx.areas.landmarks
    if faces is None:
        raise BadSourceOption(
            "operation face needs the image's face landmarks: PUT /sourceimages/{org}/{hash}"
            "/meta/dynamic/detection_face (empty body) first, then render that new hash"
        )
    out = []
    for points in faces[:MAX_OVERLAYS]:
        if p.leftFeature in points and p.rightFeature in points:
            placed = placement(
                points[p.leftFeature].center, points[p.rightFeature].center, natural, p
            )
            if placed is not None:
                out.append(placed)
    covered = sum(_clipped(pl.bounds(), image).area for pl in out)
    if covered > OVERLAY_SHARE * image.pixels:
        raise OverBudget(
            f"operation face: the secondary images would cover {covered:.0f} px, more than "
            f"{OVERLAY_SHARE:.0%} of the image; use a smaller scale"
        )
    return out


@dataclass(frozen=True, slots=True)
class _Region:
    """Whole pixels of the image a secondary lands on."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


def _clipped(box: Box, image: Size) -> _Region:
    x0, y0 = max(0, math.floor(box.x)), max(0, math.floor(box.y))
    x1 = min(image.width, math.ceil(box.x + box.width))
    y1 = min(image.height, math.ceil(box.y + box.height))
    return _Region(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """The placed secondaries cover at most ``OVERLAY_SHARE`` of the image, each resized,
    turned and composited; decoding the secondary is counted by engine/cost.py."""
    return megapixels(after) * (1.0 + OVERLAY_SHARE * _OVERLAY_PASSES)


# --------------------------------------------------------------------------------- pixels


def _decoded(p: FaceParameters, ctx: RenderContext, width: int) -> pyvips.Image:
    """The secondary, premultiplied sRGB with alpha, ``width`` px wide at most (never
    enlarged: each face's copy is sized from it), in memory; shared by an animation's
    frames."""
    key = ("face secondary", p.secondary_image, width)
    if key in ctx.memo:
        return ctx.memo[key]
    data = ctx.resources.get(p.secondary_image)
    known = ctx.resource_images.get(p.secondary_image)
    if data is None or known is None:
        raise RenderFailed(f"face: secondary_image {p.secondary_image} was not provided")
    natural, fmt = known.info.size, known.info.format
    try:
        if foreign.decodes(fmt):
            image = foreign.decode(data, fmt, None, max_pixels=natural.pixels)
            image = image.thumbnail_image(width, height=natural.height, size="down")
        else:
            image = pyvips.Image.thumbnail_buffer(data, width, height=natural.height, size="down")
        image = to_srgb(image)
        if not image.hasalpha():
            image = image.bandjoin(255)
        image = image.premultiply().copy_memory()
    except pyvips.Error as exc:
        raise RenderFailed("face: secondary_image cannot be decoded") from exc
    ctx.memo[key] = image
    return image


def _overlay(source: pyvips.Image, placed: Placement, image: Size) -> tuple[pyvips.Image, _Region]:
    """The secondary sized, turned and cut to where it lands on the image (premultiplied
    RGBA) and that region (whole pixels)."""
    sized = source.resize(placed.width / source.width, vscale=placed.height / source.height)
    a, b, c, d = placed.matrix()
    ax, ay = placed.anchor
    tx, ty = placed.target
    region = _clipped(placed.bounds(), image)
    x, y, w, h = region.x, region.y, region.width, region.height
    turned = sized.affine(
        [a, b, c, d],
        oarea=[x, y, w, h],
        odx=tx - (a * ax + b * ay),
        ody=ty - (c * ax + d * ay),
        interpolate=pyvips.Interpolate.new("bilinear"),
        background=[0, 0, 0, 0],
        extend="background",
    )
    return turned, region


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(FaceParameters, options)
    known = ctx.resource_images.get(p.secondary_image)
    if known is None:
        raise RenderFailed(f"face: secondary_image {p.secondary_image} was not provided")
    size = size_of(image)
    placed = _placements(size, known.info.size, p, ctx)
    if not placed:
        return image
    source = _decoded(p, ctx, max(pl.width for pl in placed))
    had_alpha = image.hasalpha()
    base = to_srgb(image)
    if not had_alpha:
        base = base.bandjoin(255)
    base = base.premultiply()
    for pl in placed:
        if not _clipped(pl.bounds(), size).area:
            continue  # wholly outside the image
        overlay, region = _overlay(source, pl, size)
        if region.area:
            base = base.composite2(overlay, "over", x=region.x, y=region.y, premultiplied=True)
    out = base.unpremultiply().cast("uchar")
    return out if had_alpha else out[:3]


KIND = OperationKind("face", apply, FaceParameters, passes=passes)

__all__ = ["FEATURES", "KIND", "FaceParameters", "Placement", "placement"]
