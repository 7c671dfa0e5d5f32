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
from typing import Any

#: rokka's serialisation of "no dynamic metadata" (PHP ``serialize([])``); with it the
#: hash of a plain image is bit-compatible with rokka's.
EMPTY_SERIALISED = "a:0:{}"
#: Appended to the serialised metadata of protected images so their hash differs.
PROTECTED_MARKER = ";protected"

DYNAMIC_NAMES: tuple[str, ...] = ("subject_area", "crop_area", "multi_areas", "version")
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
    raise MetadataError(
        f"Unknown dynamic metadata {name[:100]!r}; known: {', '.join(DYNAMIC_NAMES)}"
    )


def validate_dynamic_object(value: Any) -> dict[str, Any]:
    """A whole dynamic metadata object (``meta_dynamic[N]``), every entry validated."""
    if not isinstance(value, dict):
        raise MetadataError("meta_dynamic must be an object")
    return {name: validate_dynamic(name, entry) for name, entry in value.items()}


def validate_user_metadata(value: Any, field: str = "meta_user") -> dict[str, Any]:
    """User metadata: an object whose keys are ``[type:]name`` (name ``[a-z0-9_]``, ≤ 54)."""
    if not isinstance(value, dict):
        raise MetadataError(f"{field} must be an object")
    for key in value:
        check_user_field(key)
    return dict(value)


_USER_TYPES = frozenset({"str", "text", "int", "double", "date", "latlon", "array", "array_text"})
_USER_NAME = re.compile(r"[a-z0-9_]{1,54}")


def check_user_field(key: str) -> str:
    """``key`` if it is a valid user metadata field name (optionally type-prefixed)."""
    prefix, _, name = key.rpartition(":")
    if (prefix and prefix not in _USER_TYPES) or not _USER_NAME.fullmatch(name):
        raise MetadataError(
            f"user metadata field {key[:100]!r}: name must match [a-z0-9_]{{1,54}},"
            " optionally prefixed by a type"
        )
    return key
