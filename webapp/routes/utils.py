"""``POST /utils/{org}/sign_url``: sign a render URL on the server (docs/render.md).

For clients that should not hold the signing key. The three rokka clients send the same
request three ways: rokka.js a JSON body ``{url, round_date_up_to}`` (as text/plain),
the docs a form field ``url``, rokka-client-php query parameters ``url``, ``key``,
``until``, ``roundDateUpTo``. All are read; the body wins over the query string.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from webapp.auth import require
from webapp.errors import bad_request, json_response
from webapp.signing import DEFAULT_ROUND_SECONDS, iso_until, round_up, sign_url
from webapp.wire import json_body

bp = Blueprint("utils", __name__)

_MAX_URL = 8192
_MAX_ROUND = 366 * 24 * 3600
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _fields() -> dict[str, Any]:
    """Query parameters overlaid with the form fields or the JSON object body."""
    fields: dict[str, Any] = dict(request.args.items())
    if request.mimetype in _FORM_TYPES:
        fields.update(request.form.items())
    else:
        body = json_body(allow_empty=True, max_bytes=64 * 1024)
        if body is not None:
            if not isinstance(body, dict):
                raise bad_request("Request body must be a JSON object")
            fields.update(body)
    return fields


def _url(value: Any) -> str:
    if (
        not isinstance(value, str)
        or len(value) > _MAX_URL
        or not (value.startswith("/") or value.startswith(("http://", "https://")))
    ):
        raise bad_request("url must be an http(s) URL or a path starting with /")
    return value


def _until(value: Any) -> datetime | None:
    """ISO 8601 (``Z`` allowed) or seconds since the epoch; None when absent."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise bad_request("until must be an ISO 8601 date-time or seconds since the epoch")


def _round_seconds(fields: dict[str, Any]) -> int:
    value = fields.get("round_date_up_to", fields.get("roundDateUpTo"))
    if value is None or value == "":
        return DEFAULT_ROUND_SECONDS
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ROUND:
        raise bad_request(f"round_date_up_to must be an integer from 0 to {_MAX_ROUND}")
    return value


def _key(org: dict[str, Any], chosen: Any) -> str:
    """The newest signing key, or ``key`` if it names one of the organization's keys."""
    keys = [k["key"] for k in org["signing_keys"]]
    if not keys:
        raise bad_request("The organization has no signing key")
    if chosen is None or chosen == "":
        return keys[0]
    if chosen not in keys:
        raise bad_request("key is not one of the organization's signing keys")
    return chosen


@bp.post("/utils/<org>/sign_url")
def sign(org: str) -> Response:
    """200 ``{"signed_url", "original_url", "until"?}`` for members who may read the org."""
    organization = require(org, "org:read")
    fields = _fields()
    url = _url(fields.get("url"))
    until = _until(fields.get("until"))
    round_seconds = _round_seconds(fields)  # validated even without until: typos show
    if until is not None:
        until = round_up(until, round_seconds)
    signed = sign_url(url, _key(organization, fields.get("key")), until=until)
    answer: dict[str, Any] = {"signed_url": signed, "original_url": url}
    if until is not None:
        answer["until"] = iso_until(until)
    return json_response(answer)
