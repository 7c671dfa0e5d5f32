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
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlsplit, urlunsplit

SIG_LENGTH = 16

#: Clients round ``until`` up to this many seconds so signed URLs stay cacheable (rokka).
DEFAULT_ROUND_SECONDS = 300


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
) -> datetime | None:
    """Raise ``SignatureError`` unless ``raw_path?raw_query`` carries a valid ``sig``.

    ``raw_path`` is the path as requested (percent-encoded), ``raw_query`` the query
    string without ``?``. Any of ``keys`` may have signed it (key rotation). Returns the
    signed ``until`` (aware, UTC) if the signature is time-limited, else None.
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
    return until


def round_up(moment: datetime, seconds: int) -> datetime:
    """``moment`` rounded up to a multiple of ``seconds`` since the epoch (UTC).

    Like rokka.js and rokka-utils-php: URLs signed within the same window are identical,
    which keeps CDN caches warm. ``seconds`` <= 1 leaves it unchanged (but drops
    sub-millisecond precision, which the ISO form cannot carry anyway).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if seconds <= 1:
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    elapsed = (moment - epoch).total_seconds()
    windows = -(-elapsed // seconds)  # ceiling division on floats
    return epoch + timedelta(seconds=windows * seconds)


def iso_until(moment: datetime) -> str:
    """``2050-02-08T07:05:00.000Z``: the form rokka.js puts in ``sigopts`` (toISOString)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sign_url(url: str, key: str, *, until: datetime | None = None) -> str:
    """``url`` with a ``sig`` for ``key`` (and ``sigopts={"until": ...}`` when given).

    ``url`` is absolute or a path starting with ``/``; an old ``sig``/``sigopts`` is
    replaced. The path is signed as given (slug included, as rokka-utils-php does); the
    server accepts signatures with and without the slug, so both client styles verify.
    """
    parts = urlsplit(url)
    kept = [
        part
        for part in parts.query.split("&")
        if part and part.split("=", 1)[0] not in ("sig", "sigopts")
    ]
    if until is not None:
        opts = json.dumps({"until": iso_until(until)}, separators=(",", ":"))
        kept.append("sigopts=" + quote_plus(opts, safe=""))
    query = "&".join(kept)
    path = parts.path or "/"
    sig = signature(f"{path}?{query}" if query else path, key)
    query = f"{query}&sig={sig}" if query else f"sig={sig}"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
