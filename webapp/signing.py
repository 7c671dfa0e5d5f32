"""Signed render URLs for protected images and stacks (rokka-compatible).

``sig`` is the first 16 hex characters of ``sha256(<path>[?<query without sig>] + ":" + key)``
where ``path`` starts with ``/`` and the query is in its encoded form as sent. rokka.js
signs the path without the SEO slug, rokka-utils-php with it: both are accepted. An
optional ``sigopts={"until": "<ISO 8601>"}`` in the signed query limits validity.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote_plus

SIG_LENGTH = 16


def signature(signed: str, key: str) -> str:
    """The 16-hex-character signature of ``signed`` (path plus query) under ``key``."""
    return hashlib.sha256(f"{signed}:{key}".encode()).hexdigest()[:SIG_LENGTH]


def _query_without_sig(raw_query: str) -> tuple[str, str | None]:
    kept, sig = [], None
    for part in raw_query.split("&") if raw_query else []:
        name = part.split("=", 1)[0]
        if name == "sig":
            sig = part.split("=", 1)[1] if "=" in part else ""
        elif part:
            kept.append(part)
    return "&".join(kept), sig


def _until(query: str) -> datetime | None:
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "sigopts":
            try:
                opts = json.loads(value)
                until = opts.get("until") if isinstance(opts, dict) else None
                if until is None:
                    return None
                return datetime.fromisoformat(str(until).replace("Z", "+00:00"))
            except (ValueError, TypeError) as exc:
                raise SignatureError("sigopts is not valid") from exc
    return None


class SignatureError(Exception):
    """The URL is not validly signed; ``str(exc)`` says why."""


def strip_slug(path: str) -> str:
    """``/stack/abcdef/slug.jpg`` → ``/stack/abcdef.jpg`` (rokka.js signs this form)."""
    match = re.fullmatch(r"(.*/[0-9a-f]{6,40})/[^/]+(\.[A-Za-z0-9]+)", path)
    return match.group(1) + match.group(2) if match else path


def verify(
    raw_path: str, raw_query: str, keys: Iterable[str], *, now: datetime | None = None
) -> None:
    """Raise ``SignatureError`` unless ``raw_path?raw_query`` carries a valid ``sig``.

    ``raw_path`` is the path as requested (percent-encoded), ``raw_query`` the query
    string without ``?``. Any of ``keys`` may have signed it (key rotation).
    """
    query, sig = _query_without_sig(raw_query)
    if not sig:
        raise SignatureError("this image needs a signed URL (sig missing)")
    sig = unquote_plus(sig)
    suffix = f"?{query}" if query else ""
    candidates = {raw_path + suffix, strip_slug(raw_path) + suffix}
    valid = any(
        hmac.compare_digest(signature(candidate, key), sig)
        for key in keys
        if key
        for candidate in candidates
    )
    if not valid:
        raise SignatureError("invalid signature")
    until = _until(query)
    if until is not None:
        moment = now or datetime.now(UTC)
        if until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        if until < moment:
            raise SignatureError("signature expired")
