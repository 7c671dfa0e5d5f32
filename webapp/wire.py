"""Reading requests the way rokka's clients send them.

rokka.js sends JSON bodies as ``text/plain``, bare strings where a JSON string is meant,
and booleans in query strings as ``true``/``false``. These helpers accept all of that and
turn anything malformed into a 400 in the error shape.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import request

from webapp.errors import ApiError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 parses to inf
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that rejects NaN/Infinity (also ``1e999``) and turns deep nesting
    into ValueError."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _body(max_bytes: int | None) -> bytes:
    """The raw body; 413 past ``max_bytes`` (checked before reading when the length is
    declared, so a huge JSON body is never buffered)."""
    if max_bytes is not None:
        declared = request.content_length
        if declared is not None and declared > max_bytes:
            raise ApiError(413, "Request body too large")
    raw = request.get_data(cache=True)
    if max_bytes is not None and len(raw) > max_bytes:
        raise ApiError(413, "Request body too large")
    return raw


def json_body(*, allow_empty: bool = False, max_bytes: int | None = None) -> Any:
    """The request body parsed as JSON, whatever its content type.

    An empty body gives ``None`` when ``allow_empty``; otherwise a 400. A body larger
    than ``max_bytes`` (bytes; default: only the app's MAX_CONTENT_LENGTH) is a 413.
    """
    raw = _body(max_bytes)
    if not raw.strip():
        if allow_empty:
            return None
        raise ApiError(400, "Request body must be JSON")
    try:
        return loads_strict(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from exc


def json_or_text_body(*, max_bytes: int | None = None) -> Any:
    """The body as JSON if it parses, else the raw text (rokka.js sends bare strings).

    A body larger than ``max_bytes`` (bytes) is a 413.
    """
    raw = _body(max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "Request body must be UTF-8") from exc
    try:
        return loads_strict(text)
    except ValueError:
        return text


def parse_bool(value: Any, *, name: str) -> bool:
    """A boolean from JSON or a query string (``true``/``false``/``1``/``0``); else 400."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1"}:
        return True
    if text in {"false", "0", ""}:
        return False
    raise ApiError(400, f"{name} must be true or false")


def query_bool(name: str, default: bool = False) -> bool:
    """A boolean query parameter."""
    if name not in request.args:
        return default
    return parse_bool(request.args[name], name=name)


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in ``low..high`` (ASCII digits only); else 400."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # the length cap keeps int() away from huge digit strings (and Python's digit limit)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}")
    return int(raw)
