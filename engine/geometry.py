"""Pure geometry of the pixel pipeline: sizes, boxes, areas and the crop/resize decisions.

Nothing here touches pyvips, so every rule can be tested as a table (tests/engine/test_geometry.py).

Coordinates are pixels of the *current* image, origin top-left, x to the right, y down.
Areas (subject area, crop area, face box, multi areas) are stored in *display* orientation,
i.e. after the EXIF orientation is applied, on the same grid as the reported width/height.
Boxes carried through transforms keep float coordinates; :func:`crop_box` returns whole pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from engine.landmarks import parse_eyemouth

# rokka anchors: a keyword, or X_Y (also X-Y); X = left|center|right|px, Y = top|center|bottom|px
_ANCHOR_XY = re.compile(r"^(left|center|right|\d+)[_-](top|center|bottom|\d+)$")
_AREA_ANCHORS = frozenset({"auto", "subjectarea", "croparea", "face", "smart"})


@dataclass(frozen=True, slots=True)
class Size:
    """An image size in pixels (both >= 1)."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned rectangle in pixels; floats while being carried through transforms."""

    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def rounded(self) -> Box:
        """Whole-pixel box (x, y floored; width, height rounded, at least 1)."""
        x, y = math.floor(self.x + 1e-9), math.floor(self.y + 1e-9)
        return Box(x, y, max(1, round(self.width)), max(1, round(self.height)))

    def as_ints(self) -> tuple[int, int, int, int]:
        b = self.rounded()
        return int(b.x), int(b.y), int(b.width), int(b.height)


@dataclass(frozen=True, slots=True)
class Area:
    """One named area from ``multi_areas``: its type (``subject_area``/``crop_area``) and box."""

    kind: str
    box: Box


@dataclass(frozen=True, slots=True)
class Areas:
    """All areas of one source image, in the coordinates of the current image.

    ``face`` is the bounding box of all detected faces (rokka ``detection_face``).
    ``landmarks`` holds per face its named points (``eyeLeft`` ..., rokka
    ``detection_eyemouth``), each carried as a 1 x 1 px box centred on the point; a point
    cut away by a crop is dropped. ``landmarks`` is None when the image was never
    detected (no ``detection_eyemouth`` metadata), ``()`` when no face had landmarks.
    """

    subject: Box | None = None
    crop: Box | None = None
    face: Box | None = None
    multi: Mapping[str, Area] = field(default_factory=lambda: MappingProxyType({}))
    landmarks: tuple[Mapping[str, Box], ...] | None = None

    def map(self, transform: Callable[[Box], Box | None]) -> Areas:
        """Apply one geometric transform to every box; boxes mapped to None are dropped."""

        def one(box: Box | None) -> Box | None:
            return None if box is None else transform(box)

        multi = {}
        for name, area in self.multi.items():
            moved = transform(area.box)
            if moved is not None:
                multi[name] = Area(area.kind, moved)
        landmarks = None
        if self.landmarks is not None:
            landmarks = tuple(_map_points(points, transform) for points in self.landmarks)
        return Areas(
            subject=one(self.subject),
            crop=one(self.crop),
            face=one(self.face),
            multi=MappingProxyType(multi),
            landmarks=landmarks,
        )

    def select(self, name: str | None) -> Areas:
        """Areas to crop with: ``multi_areas[name]`` replaces subject/crop area when present.

        A missing name falls back to the plain areas (rokka's ``area-landscape_16_9`` example).
        """
        if not name or name not in self.multi:
            return self
        area = self.multi[name]
        if area.kind == "crop_area":
            return replace(self, subject=None, crop=area.box)
        return replace(self, subject=area.box, crop=None)


def _map_points(
    points: Mapping[str, Box], transform: Callable[[Box], Box | None]
) -> Mapping[str, Box]:
    moved = {}
    for name, box in points.items():
        after = transform(box)
        if after is not None:
            moved[name] = after
    return MappingProxyType(moved)


def point_box(x: float, y: float) -> Box:
    """The 1 x 1 px box a landmark at (x, y) is carried as."""
    return Box(x - 0.5, y - 0.5, 1.0, 1.0)


# --------------------------------------------------------------------------- parsing areas


def parse_box(raw: Mapping[str, Any], size: Size) -> Box:
    """A rokka area object ``{x, y, width=1, height=1, percentage=false}`` as a pixel box.

    With ``percentage`` true all four values are percent (0-100) of the display size.
    """
    x, y = float(raw["x"]), float(raw["y"])
    w, h = float(raw.get("width", 1)), float(raw.get("height", 1))
    if raw.get("percentage"):
        sx, sy = size.width / 100, size.height / 100
        x, y, w, h = x * sx, y * sy, w * sx, h * sy
    return Box(x, y, max(w, 1.0), max(h, 1.0))


def _face_box(raw: Any, size: Size) -> Box | None:
    # cropstack stores {width, height, x, y, faces: [...]} ({"faces": []} when none was
    # found); rokka stores one box. Accept a single box, a list of boxes or {"faces": [...]}
    # and use the bounding box of all faces.
    if isinstance(raw, Mapping) and "faces" in raw:
        raw = raw["faces"]
    boxes = raw if isinstance(raw, list) else [raw]
    parsed = [parse_box(b, size) for b in boxes if isinstance(b, Mapping) and "x" in b]
    return union(parsed) if parsed else None


def parse_areas(dynamic_metadata: Mapping[str, Any] | None, size: Size) -> Areas:
    """Areas from rokka dynamic metadata, on an image of display size ``size``."""
    meta = dynamic_metadata or {}
    subject = meta.get("subject_area")
    crop = meta.get("crop_area")
    multi: dict[str, Area] = {}
    for name, entry in (meta.get("multi_areas") or {}).items():
        # An entry is keyed by area type; subject_area wins as for the plain areas.
        for kind in ("subject_area", "crop_area"):
            if isinstance(entry, Mapping) and kind in entry:
                multi[name] = Area(kind, parse_box(entry[kind], size))
                break
    return Areas(
        subject=parse_box(subject, size) if subject else None,
        crop=parse_box(crop, size) if crop else None,
        face=_face_box(meta["detection_face"], size) if meta.get("detection_face") else None,
        multi=MappingProxyType(multi),
        landmarks=_landmarks(meta["detection_eyemouth"]) if "detection_eyemouth" in meta else None,
    )


def _landmarks(raw: Any) -> tuple[Mapping[str, Box], ...]:
    return tuple(
        MappingProxyType({name: point_box(x, y) for name, (x, y) in points.items()})
        for points in parse_eyemouth(raw)
    )


def union(boxes: list[Box]) -> Box:
    """Smallest box containing all ``boxes`` (non-empty list)."""
    x0 = min(b.x for b in boxes)
    y0 = min(b.y for b in boxes)
    x1 = max(b.x + b.width for b in boxes)
    y1 = max(b.y + b.height for b in boxes)
    return Box(x0, y0, x1 - x0, y1 - y0)


# --------------------------------------------------------------------------- transforms


def scale_box(box: Box, fx: float, fy: float) -> Box:
    """A box after the image was resized by factors ``fx``, ``fy`` (new size / old size)."""
    return Box(box.x * fx, box.y * fy, box.width * fx, box.height * fy)


def offset_box(box: Box, region: Box) -> Box | None:
    """A box after the image was cut to ``region`` (crop, trim): shifted and clipped.

    None when the box lies entirely outside the region.
    """
    x0 = max(box.x, region.x)
    y0 = max(box.y, region.y)
    x1 = min(box.x + box.width, region.x + region.width)
    y1 = min(box.y + box.height, region.y + region.height)
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(x0 - region.x, y0 - region.y, x1 - x0, y1 - y0)


def rotate_box(box: Box, size: Size, angle: float, out: Size | None = None) -> Box:
    """A box after rotating an image of ``size`` by ``angle`` degrees clockwise.

    The canvas expands to the rotated image's bounding box (``out``, computed when not given);
    the result is the bounding box of the rotated rectangle. Multiples of 90 are exact.
    """
    turns = angle / 90
    if abs(turns - round(turns)) < 1e-9:
        return rotate90_box(box, size, int(round(turns)) % 4)
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    if out is None:
        out = rotated_size(size, angle)
    cx, cy = size.width / 2, size.height / 2
    ox, oy = out.width / 2, out.height / 2
    corners = [
        (box.x, box.y),
        (box.x + box.width, box.y),
        (box.x, box.y + box.height),
        (box.x + box.width, box.y + box.height),
    ]
    # y points down, so this matrix turns clockwise on screen.
    pts = [
        (ox + (x - cx) * cos - (y - cy) * sin, oy + (x - cx) * sin + (y - cy) * cos)
        for x, y in corners
    ]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def rotated_size(size: Size, angle: float) -> Size:
    """Canvas size after rotating by ``angle`` degrees (bounding box, as libvips rounds it)."""
    turns = angle / 90
    if abs(turns - round(turns)) < 1e-9:
        return size if int(round(turns)) % 2 == 0 else Size(size.height, size.width)
    rad = math.radians(angle)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    return Size(
        max(1, round(size.width * c + size.height * s)),
        max(1, round(size.width * s + size.height * c)),
    )


def rotate90_box(box: Box, size: Size, quarter_turns: int) -> Box:
    """A box after ``quarter_turns`` (0-3) clockwise quarter turns of an image of ``size``."""
    b, w, h = box, size.width, size.height
    for _ in range(quarter_turns % 4):
        b = Box(h - (b.y + b.height), b.x, b.height, b.width)
        w, h = h, w
    return b


def flip_box(box: Box, size: Size, *, horizontal: bool) -> Box:
    """A box after mirroring the image left-right (``horizontal``) or top-bottom."""
    if horizontal:
        return Box(size.width - box.x - box.width, box.y, box.width, box.height)
    return Box(box.x, size.height - box.y - box.height, box.width, box.height)


# EXIF orientation n -> (clockwise quarter turns, then mirror left-right) turning stored
# pixels into display pixels.
_ORIENTATIONS: dict[int, tuple[int, bool]] = {
    1: (0, False),
    2: (0, True),
    3: (2, False),
    4: (2, True),
    5: (1, True),
    6: (1, False),
    7: (3, True),
    8: (3, False),
}


def oriented_size(stored: Size, orientation: int) -> Size:
    """Display size of an image stored as ``stored`` with EXIF ``orientation`` (1-8)."""
    turns, _ = _ORIENTATIONS.get(orientation, (0, False))
    return stored if turns % 2 == 0 else Size(stored.height, stored.width)


def orient_box(box: Box, stored: Size, orientation: int) -> Box:
    """A box given on the *stored* pixel grid, moved to the display grid (EXIF 1-8).

    cropstack keeps areas in display orientation and autorotates first, so the pipeline
    itself never needs this; it exists for callers holding stored-grid coordinates.
    """
    turns, mirror = _ORIENTATIONS.get(orientation, (0, False))
    b = rotate90_box(box, stored, turns)
    return flip_box(b, oriented_size(stored, orientation), horizontal=True) if mirror else b


# --------------------------------------------------------------------------- resize


def _scaled(value: int, factor: float) -> int:
    return max(1, round(value * factor))


def resize_size(
    source: Size,
    *,
    width: int | None,
    height: int | None,
    mode: str = "box",
    upscale: bool = True,
    upscale_dpr: bool = True,
    dpr: float = 1.0,
) -> Size:
    """Output size of rokka ``resize`` on an image of ``source`` size.

    - ``box``: largest size with the source aspect that fits inside width x height.
    - ``fill``: smallest size with the source aspect that covers width x height (no crop).
    - ``absolute``: exactly width x height (aspect may change).
    A missing width or height is unconstrained (aspect kept). ``upscale`` false never enlarges
    beyond the source; ``dpr`` (1-10) then multiplies, and ``upscale_dpr`` false caps that
    product at the larger of the source and the pre-dpr size (rokka's DPR table).
    """
    sx = width / source.width if width else None
    sy = height / source.height if height else None
    if mode == "absolute" and sx is not None and sy is not None:
        fx, fy = sx, sy
    else:
        given = [f for f in (sx, sy) if f is not None]
        f = (max(given) if mode == "fill" else min(given)) if given else 1.0
        fx = fy = f

    def finish(f: float) -> float:
        base = f if upscale else min(f, 1.0)
        out = base * dpr
        return out if upscale_dpr else min(out, max(base, 1.0))

    return Size(_scaled(source.width, finish(fx)), _scaled(source.height, finish(fy)))


# --------------------------------------------------------------------------- crop


def _largest_ratio_box(image: Size, rw: float, rh: float) -> tuple[float, float]:
    ratio = rw / rh
    if image.width / image.height > ratio:
        return image.height * ratio, float(image.height)
    return float(image.width), image.width / ratio


# How far (relative) an area's ratio may be from the asked one and still count as it:
# 1366x768 is "16:9" to its author (0.05 % off).
_RATIO_TOLERANCE = 0.01


def _has_ratio(area: Box, rw: float, rh: float) -> bool:
    return abs((area.width / area.height) / (rw / rh) - 1) <= _RATIO_TOLERANCE


def _ratio_inside(cut: Box, rw: float, rh: float) -> Box:
    """The largest whole-pixel box of ratio ``rw:rh`` centred in the whole-pixel ``cut``:
    ``cut`` itself when it has the ratio to the pixel; else the excess of its longer side
    (rounding, clipping at the image edge) is trimmed evenly."""
    ratio = rw / rh
    if cut.width / cut.height > ratio:
        h = cut.height
        w = _clamp(round(h * ratio), 1, cut.width)
    else:
        w = cut.width
        h = _clamp(round(w / ratio), 1, cut.height)
    return Box(cut.x + (cut.width - w) // 2, cut.y + (cut.height - h) // 2, w, h)


def _fit_area_to_ratio(area: Box, image: Size, rw: float, rh: float) -> tuple[float, float]:
    # Smallest box of the ratio that contains the area; if that does not fit the image,
    # the largest box of the ratio inside the image.
    ratio = rw / rh
    w, h = area.width, area.height
    if w / h > ratio:
        h = w / ratio
    else:
        w = h * ratio
    if w > image.width or h > image.height:
        return _largest_ratio_box(image, rw, rh)
    return w, h


def _position(extent: float, length: float, token: str, start_kw: str, end_kw: str) -> float:
    if token == start_kw:
        return 0.0
    if token == end_kw:
        return extent - length
    if token == "center":
        return (extent - length) / 2
    return float(token)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))


def parse_anchor(anchor: str) -> tuple[str, str] | None:
    """``X_Y`` / ``X-Y`` anchor parts, or None for a keyword anchor (auto, smart, ...)."""
    m = _ANCHOR_XY.match(anchor)
    return (m.group(1), m.group(2)) if m else None


def crop_size(
    image: Size,
    *,
    width: float,
    height: float,
    mode: str = "absolute",
    scale: float = 100,
    area: Box | None = None,
) -> tuple[int, int]:
    """Crop box size (before positioning) for rokka crop ``mode``; see :func:`crop_box`."""
    w: float
    h: float
    if mode == "ratio":
        w, h = _largest_ratio_box(image, width, height)
    elif mode == "box" and area is not None:
        w, h = area.width, area.height
    elif mode == "area" and area is not None:
        w, h = _fit_area_to_ratio(area, image, width, height)
    elif mode == "area":
        w, h = _largest_ratio_box(image, width, height)
    elif width > image.width or height > image.height:
        # Absolute crop bigger than the image (e.g. after a non-upscaling resize): rokka
        # crops "as expected", i.e. like mode ratio with the same aspect.
        w, h = _largest_ratio_box(image, width, height)
    else:
        w, h = width, height
    w, h = w * scale / 100, h * scale / 100
    return (int(_clamp(round(w), 1, image.width)), int(_clamp(round(h), 1, image.height)))


def crop_box(
    image: Size,
    *,
    width: float,
    height: float,
    mode: str = "absolute",
    anchor: str = "auto",
    fallback: str = "center_center",
    scale: float = 100,
    movearea_x: float | None = None,
    movearea_y: float | None = None,
    subject: Box | None = None,
    crop_area: Box | None = None,
    face: Box | None = None,
    smart: Box | None = None,
) -> Box:
    """The rectangle rokka ``crop`` cuts from an image of ``image`` size (whole pixels).

    ``width``/``height`` are pixels (``absolute``) or a ratio (``ratio``, ``area``);
    ``scale`` (0-100 %) shrinks the box around its centre; ``movearea_x``/``_y`` shift the
    focus area by that percent of its own width/height. ``smart`` is the attention point
    found by libvips for ``anchor="smart"``. The area used:

    - ``auto``: subject area, else crop area, else face, else ``fallback``;
    - ``subjectarea`` / ``croparea`` / ``face`` / ``smart``: that area, else ``fallback``;
    - ``X_Y``: no area, position by pixels or left/center/right x top/center/bottom.

    A crop area is cut exactly (clipped to the image), whatever mode, size and scale say
    (rokka). One refinement: with ``mode: ratio`` and an area of that ratio (within 1 %),
    the answer keeps the ratio to the pixel, also when the area was scaled by an earlier
    resize or is clipped at the image edge.
    Subject-area boxes are centred on the (moved) area and clamped inside the image.
    """
    focus: Box | None = None
    kind = anchor if anchor in _AREA_ANCHORS else "xy"
    if kind == "auto":
        if subject is not None:
            focus = subject
        elif crop_area is not None:
            kind = "croparea"
        else:
            focus = face
    elif kind == "subjectarea":
        focus = subject
    elif kind == "face":
        focus = face
    elif kind == "smart":
        focus = smart

    if kind == "croparea" and crop_area is not None:
        cut = offset_box(crop_area, Box(0, 0, image.width, image.height))
        if cut is not None:
            if mode == "ratio" and _has_ratio(crop_area, width, height):
                return _ratio_inside(cut.rounded(), width, height)
            return cut.rounded()

    w, h = crop_size(image, width=width, height=height, mode=mode, scale=scale, area=focus)
    if focus is not None:
        cx, cy = focus.center
        cx += focus.width * (movearea_x or 0) / 100
        cy += focus.height * (movearea_y or 0) / 100
        x, y = cx - w / 2, cy - h / 2
    else:
        parts = parse_anchor(anchor) or parse_anchor(fallback) or ("center", "center")
        # Position the unscaled box, then shrink it around its centre ("scale" semantics).
        fw, fh = crop_size(image, width=width, height=height, mode=mode, area=None)
        fx = _position(image.width, fw, parts[0], "left", "right")
        fy = _position(image.height, fh, parts[1], "top", "bottom")
        fx = _clamp(fx, 0, image.width - fw)
        fy = _clamp(fy, 0, image.height - fh)
        x, y = fx + (fw - w) / 2, fy + (fh - h) / 2
    x = _clamp(round(x), 0, image.width - w)
    y = _clamp(round(y), 0, image.height - h)
    return Box(int(x), int(y), w, h)


# --------------------------------------------------------------------------- whole plan

MAX_OUTPUT_SIDE = 10_000


def autorotate_turns(size: Size, width: int | None, height: int | None) -> bool:
    """Whether ``autorotate`` with a box must turn the image: box and image aspects differ.

    A square box or image never turns (neither is portrait nor landscape).
    """
    if not width or not height or width == height or size.width == size.height:
        return False
    return (width > height) != (size.width > size.height)
