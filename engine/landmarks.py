"""Facial landmarks: named points of a face (eyes, mouth corners) read off the boxes the eye
and mouth detectors return inside one face box, and the stored form rokka calls
``detection_eyemouth``.

Pure geometry (no OpenCV, no pyvips), so every rule is a table test
(tests/engine/test_landmarks.py). Coordinates are pixels, x right, y down; "left" and
"right" are the image's left and right (the viewer's), as AWS Rekognition, whose
landmark names rokka uses, reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The landmark names cropstack finds, in rokka's (AWS Rekognition's) spelling: the centre
#: of each eye, the corners of the mouth and the middle of its top and bottom edge.
FEATURES: tuple[str, ...] = (
    "eyeLeft",
    "eyeRight",
    "mouthLeft",
    "mouthRight",
    "mouthUp",
    "mouthDown",
)

# The mouth detector's box is wider and taller than the lips: the corners are this share of
# its width in from each side, top and bottom this share of its height from its middle
# (measured on the test photographs: the corners of a closed or smiling mouth).
_MOUTH_INSET_X = 0.15
_MOUTH_HALF_Y = 0.25


@dataclass(frozen=True, slots=True)
class Rect:
    """A detector hit: top-left corner and size, pixels."""

    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2


Point = tuple[float, float]


def eye_pair(face: Rect, candidates: Iterable[Rect]) -> tuple[Rect, Rect] | None:
    """The two eyes of ``face`` among the eye detector's ``candidates`` (in the same
    coordinates): the largest hit whose centre lies in each half of the face's upper 60 %,
    or None when either half has none (glasses, closed or hidden eyes)."""
    left: Rect | None = None
    right: Rect | None = None
    middle = face.x + face.width / 2
    for hit in candidates:
        cx, cy = hit.center
        if not face.y <= cy <= face.y + face.height * 0.6:
            continue
        if face.x <= cx < middle and (left is None or _area(hit) > _area(left)):
            left = hit
        elif middle <= cx <= face.x + face.width and (right is None or _area(hit) > _area(right)):
            right = hit
    return None if left is None or right is None else (left, right)


def mouth(face: Rect, candidates: Iterable[Rect], eyes: tuple[Rect, Rect] | None) -> Rect | None:
    """The mouth of ``face`` among the mouth detector's ``candidates``: centred a quarter
    of the face's height below the eyes (below the face's middle without eyes) and
    horizontally within the middle half of the face; of several, the largest (the nostrils
    give smaller hits above the mouth), then the one nearest the line down from between
    the eyes."""
    floor = face.y + face.height * 0.5
    axis = face.x + face.width / 2
    if eyes is not None:
        floor = max(eyes[0].center[1], eyes[1].center[1]) + face.height * 0.25
        axis = (eyes[0].center[0] + eyes[1].center[0]) / 2
    valid = [
        hit
        for hit in candidates
        if hit.center[1] >= floor and abs(hit.center[0] - face.x - face.width / 2) <= face.width / 4
    ]
    if not valid:
        return None
    return min(valid, key=lambda hit: (-_area(hit), abs(hit.center[0] - axis)))


def points(eyes: tuple[Rect, Rect] | None, mouth_box: Rect | None) -> dict[str, Point]:
    """Landmark name -> point from the eye pair (image-left eye first) and the mouth box;
    names whose detector found nothing are left out."""
    found: dict[str, Point] = {}
    if eyes is not None:
        found["eyeLeft"] = eyes[0].center
        found["eyeRight"] = eyes[1].center
    if mouth_box is not None:
        cx, cy = mouth_box.center
        inset = mouth_box.width * _MOUTH_INSET_X
        found["mouthLeft"] = (mouth_box.x + inset, cy)
        found["mouthRight"] = (mouth_box.x + mouth_box.width - inset, cy)
        found["mouthUp"] = (cx, cy - mouth_box.height * _MOUTH_HALF_Y)
        found["mouthDown"] = (cx, cy + mouth_box.height * _MOUTH_HALF_Y)
    return found


def _area(rect: Rect) -> float:
    return rect.width * rect.height


def _bounds(pts: Iterable[Point]) -> dict[str, int]:
    xs, ys = zip(*pts, strict=True)
    x0, y0 = int(min(xs)), int(min(ys))
    return {
        "width": max(1, round(max(xs)) - x0),
        "height": max(1, round(max(ys)) - y0),
        "x": x0,
        "y": y0,
    }


def eyemouth_metadata(faces: Sequence[Mapping[str, Point]]) -> dict[str, Any]:
    """The stored ``detection_eyemouth`` value for the landmarks of each face (display
    pixels; faces without any landmark left out by the caller).

    rokka derives an *area* from eyes and mouth; cropstack stores it as the box around
    every face's landmarks (``{width, height, x, y}``, whole pixels, what a crop anchors
    on), followed by ``faces``: per face its own box and its points, each ``{x, y}`` in
    whole pixels. No landmarks gives ``{"faces": []}``: detection ran and found none.
    """
    entries = []
    for found in faces:
        rounded = {n: (round(found[n][0]), round(found[n][1])) for n in FEATURES if n in found}
        entry: dict[str, Any] = dict(_bounds(rounded.values()))
        entry.update({n: {"x": x, "y": y} for n, (x, y) in rounded.items()})
        entries.append(entry)
    if not entries:
        return {"faces": []}
    every = [(e[n]["x"], e[n]["y"]) for e in entries for n in FEATURES if n in e]
    return {**_bounds(every), "faces": entries}


def parse_eyemouth(raw: Any) -> tuple[dict[str, Point], ...]:
    """The faces' landmarks of stored ``detection_eyemouth`` metadata (unknown names and
    malformed entries skipped): name -> (x, y) pixels, one mapping per face."""
    entries = raw.get("faces") if isinstance(raw, Mapping) else None
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        found = {}
        for name in FEATURES:
            point = entry.get(name)
            if isinstance(point, Mapping) and _number(point.get("x")) and _number(point.get("y")):
                found[name] = (float(point["x"]), float(point["y"]))
        if found:
            out.append(found)
    return tuple(out)


def _number(value: Any) -> bool:
    return type(value) in (int, float)
