"""Dynamic metadata validation and the identity hash of a source image. Pure Python.

Dynamic metadata changes what an image *is* (its crop), so it is part of the image's
identity: ``hash`` covers the bytes plus a canonical form of the dynamic metadata and the
``protected`` flag. docs/sourceimages.md ("Identity") states the formula.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from engine.landmarks import eyemouth_metadata

#: rokka's serialisation of "no dynamic metadata" (PHP ``serialize([])``); with it the
#: hash of a plain image is bit-compatible with rokka's.
EMPTY_SERIALISED = "a:0:{}"
#: Appended to the serialised metadata of protected images so their hash differs.
PROTECTED_MARKER = ";protected"

DYNAMIC_NAMES: tuple[str, ...] = (
    "subject_area",
    "crop_area",
    "multi_areas",
    "version",
    "detection_face",
    "detection_eyemouth",
)
#: Dynamic metadata cropstack computes itself: set by ``PUT`` with an empty body, never
#: from a value a client sends.
DETECTED_NAMES: frozenset[str] = frozenset({"detection_face"})
#: Dynamic metadata derived by a detection (name -> the detection that stores it): never
#: sent, removed with it (rokka: detection_face "derives detection_eyemouth").
DERIVED_NAMES: dict[str, str] = {"detection_eyemouth": "detection_face"}
_AREA_NAME = re.compile(r"[A-Za-z0-9_]+")
_HEX40 = re.compile(r"[0-9a-f]{40}")


class MetadataError(ValueError):
    """Invalid metadata; the message names the offending field (answered as 400)."""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def identity_hash(binary_hash: str, dynamic_metadata: dict[str, Any], protected: bool) -> str:
    """The 40-hex ``hash`` of an image: bytes (via ``binary_hash``) + dynamic metadata.

    No dynamic metadata, not protected: ``sha1(binary_hash + "a:0:{}")`` exactly as rokka.
    Otherwise ``sha1(binary_hash + "json:" + canonical_json(dm))`` (``"a:0:{}"`` when dm
    is empty), followed by ``";protected"`` for protected images.
    """
    if not _HEX40.fullmatch(binary_hash):
        raise ValueError("binary_hash must be 40 lowercase hex characters")
    suffix = "json:" + canonical_json(dynamic_metadata) if dynamic_metadata else EMPTY_SERIALISED
    if protected:
        suffix += PROTECTED_MARKER
    return hashlib.sha1((binary_hash + suffix).encode("utf-8")).hexdigest()


def _is_int(value: Any) -> bool:
    # bool is a subclass of int; "5", 5.0, NaN and 1e999 are not integers either.
    return type(value) is int


def _number(value: Any, field: str, *, percentage: bool, minimum: int) -> int | float:
    if _is_int(value):
        number: int | float = value
    elif percentage and type(value) is float and math.isfinite(value):
        number = value
    else:
        kind = "a number" if percentage else "an integer"
        raise MetadataError(f"{field} must be {kind}")
    if number < minimum:
        raise MetadataError(f"{field} must be >= {minimum}")
    if percentage and number > 100:
        raise MetadataError(f"{field} must be <= 100 when percentage is true")
    if not percentage and number > 1_000_000_000:
        raise MetadataError(f"{field} is too large")
    return number


def _area(value: Any, field: str, *, require_size: bool) -> dict[str, Any]:
    """A subject or crop area, normalised to ``{width, height, x, y[, percentage]}``."""
    if not isinstance(value, dict):
        raise MetadataError(f"{field} must be an object")
    allowed = {"x", "y", "width", "height", "percentage"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise MetadataError(f"{field}.{unknown[0]} is not a known property")
    percentage = value.get("percentage", False)
    if type(percentage) is not bool:
        raise MetadataError(f"{field}.percentage must be true or false")
    area: dict[str, Any] = {}
    for key, minimum in (("width", 1), ("height", 1), ("x", 0), ("y", 0)):
        if key not in value:
            if key in ("x", "y") or require_size:
                raise MetadataError(f"{field}.{key} is required")
            area[key] = 1  # a 1x1 subject area is a focal point (rokka default)
            continue
        area[key] = _number(value[key], f"{field}.{key}", percentage=percentage, minimum=minimum)
    if percentage:
        area["percentage"] = True
    return area


def _multi_areas(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MetadataError(f"{field} must be an object")
    result: dict[str, Any] = {}
    for name, entry in value.items():
        if not _AREA_NAME.fullmatch(name) or len(name) > 100:
            raise MetadataError(f"{field}: area name {name[:100]!r} must match [A-Za-z0-9_]+")
        if not isinstance(entry, dict) or not entry:
            raise MetadataError(f"{field}.{name} must be an object of subject_area/crop_area")
        areas: dict[str, Any] = {}
        for kind, area in entry.items():
            if kind == "subject_area":
                areas[kind] = _area(area, f"{field}.{name}.{kind}", require_size=False)
            elif kind == "crop_area":
                areas[kind] = _area(area, f"{field}.{name}.{kind}", require_size=True)
            else:
                raise MetadataError(f"{field}.{name}.{kind[:100]} is not subject_area or crop_area")
        result[name] = areas
    return result


def _version(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != {"text"}:
        raise MetadataError(f'{field} must be {{"text": "..."}}')
    text = value["text"]
    if not isinstance(text, str) or len(text) > 1000:
        raise MetadataError(f"{field}.text must be a string of at most 1000 characters")
    return {"text": text}


def validate_dynamic(name: str, value: Any) -> Any:
    """The normalised value of dynamic metadata ``name``; ``MetadataError`` if invalid.

    Areas are not checked against the image size: rokka accepts areas outside the image
    (recorded: a 50x50 area at 100,100 on a 104x97 image) and renders clamp them.
    """
    if name == "subject_area":
        return _area(value, name, require_size=False)
    if name == "crop_area":
        return _area(value, name, require_size=True)
    if name == "multi_areas":
        return _multi_areas(value, name)
    if name == "version":
        return _version(value, name)
    if name in DERIVED_NAMES:
        raise MetadataError(
            f"{name} is derived, not sent: PUT /sourceimages/{{org}}/{{hash}}/meta/dynamic/"
            f"{DERIVED_NAMES[name]} with an empty body stores it"
        )
    if name in DETECTED_NAMES:
        raise MetadataError(
            f"{name} is detected, not sent: PUT /sourceimages/{{org}}/{{hash}}/meta/dynamic/"
            f"{name} with an empty body after the upload"
        )
    raise MetadataError(
        f"Unknown dynamic metadata {name[:100]!r}; known: {', '.join(DYNAMIC_NAMES)}"
    )


def face_metadata(faces: Sequence[Any]) -> dict[str, Any]:
    """The stored ``detection_face`` value for detected ``faces`` (objects with ``x``,
    ``y``, ``width``, ``height`` in display pixels, largest first).

    rokka stores one box ``{width, height, x, y}`` (its PHP client's ``DetectionFace``,
    what ``image.detection_face.*`` reads): here the box around all faces, followed by
    ``faces``, each face's own box. No face gives ``{"faces": []}``: the detection ran
    (the hash records it) and found nothing, so the ``face`` anchor falls back.
    """
    boxes = [{"width": f.width, "height": f.height, "x": f.x, "y": f.y} for f in faces]
    if not boxes:
        return {"faces": []}
    left = min(b["x"] for b in boxes)
    top = min(b["y"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    return {"width": right - left, "height": bottom - top, "x": left, "y": top, "faces": boxes}


def face_landmark_metadata(faces: Sequence[Any]) -> dict[str, Any]:
    """The stored ``detection_eyemouth`` value for detected ``faces`` (objects with a
    ``landmarks`` tuple of ``(name, x, y)`` in display pixels): see
    engine.landmarks.eyemouth_metadata. Faces without landmarks are left out."""
    found = [{name: (x, y) for name, x, y in f.landmarks} for f in faces if f.landmarks]
    return eyemouth_metadata(found)


def validate_dynamic_object(value: Any) -> dict[str, Any]:
    """A whole dynamic metadata object (``meta_dynamic[N]``), every entry validated."""
    if not isinstance(value, dict):
        raise MetadataError("meta_dynamic must be an object")
    return {name: validate_dynamic(name, entry) for name, entry in value.items()}


# -- user metadata ---------------------------------------------------------------------------

#: The user metadata types (key prefixes); a key without prefix is ``str``.
USER_TYPES: tuple[str, ...] = (
    "str",
    "text",
    "int",
    "double",
    "date",
    "latlon",
    "array",
    "array_text",
)
_USER_NAME = re.compile(r"[a-z0-9_]{1,54}")
#: Limits on user metadata (rokka documents none; these keep rows and indexes bounded).
MAX_USER_FIELDS = 200
MAX_USER_STRING = 10_000  # characters per string value or array element
MAX_USER_ARRAY = 1_000  # elements per array
_INT64 = (-(2**63), 2**63 - 1)
# What SQLite's date functions read, so the index (julianday) agrees with validation.
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?"
)
_LATLON = re.compile(r"\s*(-?\d{1,3}(?:\.\d{1,12})?)\s*,\s*(-?\d{1,3}(?:\.\d{1,12})?)\s*")


def parse_user_key(key: str) -> tuple[str, str]:
    """``(type, name)`` of a user metadata key ``[type:]name``; ``MetadataError`` if invalid.

    ``name`` is ``[a-z0-9_]``, 1 to 54 characters; ``type`` one of ``USER_TYPES``.
    """
    prefix, _, name = key.rpartition(":")
    kind = prefix or "str"
    if kind not in USER_TYPES or not _USER_NAME.fullmatch(name):
        raise MetadataError(
            f"user metadata field {key[:100]!r}: name must match [a-z0-9_]{{1,54}},"
            f" optionally prefixed by a type ({', '.join(t + ':' for t in USER_TYPES)})"
        )
    return kind, name


def user_key(kind: str, name: str) -> str:
    """The stored (and answered) key: plain strings without prefix, others with it."""
    return name if kind == "str" else f"{kind}:{name}"


def check_user_field(key: str) -> str:
    """``key`` if it is a valid user metadata field name (optionally type-prefixed)."""
    parse_user_key(key)
    return key


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise MetadataError(f"user metadata field {key}: must be a string")
    if len(value) > MAX_USER_STRING:
        raise MetadataError(f"user metadata field {key}: longer than {MAX_USER_STRING} characters")
    if "\x00" in value:
        raise MetadataError(f"user metadata field {key}: must not contain NUL characters")
    return value


def normalise_date(text: str) -> str | None:
    """``text`` as a canonical UTC date (``2017-01-01T10:00:00Z``, fraction kept when not
    zero), or None if it is not ``YYYY-MM-DD[Thh:mm[:ss[.ffffff]][Z|±hh:mm]]``.

    Without a zone the time is UTC. Equal instants give equal strings, which the search
    index relies on (it compares ``julianday`` of the canonical form).
    """
    match = _DATE.fullmatch(text)
    if not match:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if not 1 <= when.year <= 9999:
        return None
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_user_value(kind: str, key: str, value: Any) -> Any:
    """The normalised value of user field ``key`` of type ``kind``; ``MetadataError``
    naming the field if the value does not fit the type.

    ``str``/``text``: a string (≤ 10 000 characters, no NUL). ``int``: a JSON integer in
    the signed 64-bit range. ``double``: a finite JSON number (stored as float).
    ``date``: an ISO 8601 date/time, stored in canonical UTC form. ``latlon``:
    ``"lat,lon"`` with lat in [-90, 90] and lon in [-180, 180], stored as ``"47.38,8.52"``.
    ``array``/``array_text``: a list of up to 1000 strings.
    """
    if kind in ("str", "text"):
        return _string(value, key)
    if kind == "int":
        if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
            raise MetadataError(f"user metadata field {key}: must be a 64-bit integer")
        return value
    if kind == "double":
        if type(value) not in (int, float) or not math.isfinite(value):
            raise MetadataError(f"user metadata field {key}: must be a finite number")
        if abs(value) > 1e300:
            raise MetadataError(f"user metadata field {key}: number out of range")
        return float(value)
    if kind == "date":
        text = _string(value, key)
        normalised = normalise_date(text)
        if normalised is None:
            raise MetadataError(
                f"user metadata field {key}: must be a date like 2017-01-01T10:00:00Z"
            )
        return normalised
    if kind == "latlon":
        match = _LATLON.fullmatch(_string(value, key))
        lat, lon = (float(match.group(1)), float(match.group(2))) if match else (99.0, 0.0)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise MetadataError(f'user metadata field {key}: must be "lat,lon" in degrees')
        assert match is not None
        return f"{match.group(1)},{match.group(2)}"
    # array, array_text
    if not isinstance(value, list) or len(value) > MAX_USER_ARRAY:
        raise MetadataError(
            f"user metadata field {key}: must be an array of at most {MAX_USER_ARRAY} strings"
        )
    return [_string(item, f"{key}[{i}]") for i, item in enumerate(value)]


def validate_user_metadata(value: Any, field: str = "meta_user") -> dict[str, Any]:
    """A whole user metadata object, keys normalised (``str:x`` → ``x``), values validated.

    Each name may appear once (``x`` and ``int:x`` together are a 400).
    """
    if not isinstance(value, dict):
        raise MetadataError(f"{field} must be an object")
    return apply_user_patch({}, value, allow_delete=False)


def apply_user_patch(
    current: dict[str, Any], patch: dict[str, Any], *, allow_delete: bool = True
) -> dict[str, Any]:
    """``current`` with ``patch`` applied: each key sets its name (replacing that name
    under any type), a ``None`` value removes the name. Keys/values are validated.

    A field name is the identity of a field: ``int:x`` replaces an earlier ``x``.
    """
    result = dict(current)
    names = {parse_user_key(k)[1]: k for k in result}
    seen: set[str] = set()
    for key, value in patch.items():
        kind, name = parse_user_key(key)
        if name in seen:
            raise MetadataError(f"user metadata field {name} is given more than once")
        seen.add(name)
        if name in names:
            del result[names.pop(name)]
        if value is None:
            if not allow_delete:
                raise MetadataError(f"user metadata field {key}: must not be null")
            continue
        stored = user_key(kind, name)
        result[stored] = validate_user_value(kind, stored, value)
        names[name] = stored
    if len(result) > MAX_USER_FIELDS:
        raise MetadataError(f"at most {MAX_USER_FIELDS} user metadata fields per image")
    return result


def find_user_key(metadata: dict[str, Any], key: str) -> str | None:
    """The stored key ``key`` (``x`` or ``type:x``) refers to, or None.

    A bare name finds the field under any type; a prefixed one only under that type.
    """
    kind, name = parse_user_key(key)
    explicit = ":" in key
    for stored in metadata:
        stored_kind, stored_name = parse_user_key(stored)
        if stored_name == name and (not explicit or stored_kind == kind):
            return stored
    return None
