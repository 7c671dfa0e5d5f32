"""Remote images: render URLs that name ``-{path}-`` or ``-{full URL}-`` instead of a hash.

Which URL (rokka-api.md §1.1, §7; rokka's "Loading images from a remote URL"):

- ``-{path}-`` is appended to ``remote_basepath`` (with exactly one ``/`` between them);
- ``-{http(s) URL}-`` is fetched as it is when ``remote_fullurl_allow`` is true, and only
  if ``remote_fullurl_whitelist`` is null or one of its patterns matches (RE2, stacks/urlpattern.py)
  the URL's host or the whole URL (rokka's examples match hosts, ``"\\.rokka\\.io$"``).

Render URLs of the organization itself (``https://{org}.{render_domain}/...``) follow the
same rules (rokka allows them always; here that would let anonymous clients store images
in every organization), and one naming a remote image in turn is 404 (no chains).
Redirects must satisfy the whitelist too.
Each option is read from the stack, else its basestack, else the organization. A form
that is not switched on is 404 (as an unknown image); a URL the whitelist refuses is 403.
The path was percent-decoded with the render path; it is encoded again here (``%`` too),
so a remote URL has no query string.

Fetching goes through webapp/remote.py's SSRF guard (every resolved and connected address
public unless ``remote_fetch_allow_private``, redirects re-checked, ``remote_fetch_*``
limits, ``max_upload_bytes``), in one of the worker's upload places, and the bytes go
through the upload checks in a render process (``ingest``), like an ``url[N]`` upload.

Stored once per URL: the image gets a hash of its own, ``sha1(binary_hash + "remote:" +
url)`` (so it differs from an API upload of the same bytes, as on rokka, while the blob
is shared), and a catalog record (organization, URL) → hash with its fetch time. rokka
never fetches a URL again; cropstack does so only when ``remote_refresh_s`` > 0, once the
record is that old (the expiry is fixed when fetched; a record fetched while refresh was
off is due ``remote_refresh_s`` after its fetch): changed bytes become a new image
(without the old one's dynamic metadata), unchanged bytes keep the image. A refresh that
fails keeps the stored image for another period. Setting dynamic metadata (a subject
area) or protection on the image through the API makes the URL render the derived image
(``ingest.derive``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from stacks.errors import UrlNotFound
from stacks.stack import StackDefinition
from stacks.urlpattern import search
from webapp.blobs import BlobStore
from webapp.catalog import now_iso
from webapp.catalog.interface import CatalogHandle
from webapp.catalog.records import SourceImage
from webapp.catalog.remotes import RemoteImage
from webapp.errors import ApiError
from webapp.ingest import Upload, ingest
from webapp.remote import FetchError, FetchLimits, fetch
from webapp.renderer import upload_slot
from webapp.settings import Settings
from webapp.uploadform import safe_name

log = logging.getLogger(__name__)

_OPTIONS = ("remote_basepath", "remote_fullurl_allow", "remote_fullurl_whitelist")
# A full URL; proxies that merge slashes turn ``https://`` into ``https:/``, taken as well.
_FULL_URL = re.compile(r"(https?):/+(.*)", re.IGNORECASE | re.DOTALL)
# Characters left as they are when the decoded path is encoded again (RFC 3986 pchar and
# "/"; "%" is encoded, since the path arrived decoded).
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


@dataclass(frozen=True, slots=True)
class RemotePolicy:
    """The remote options in force for one render: stack, else basestack, else org."""

    basepath: str | None
    fullurl_allow: bool
    whitelist: tuple[str, ...] | None


def policy(
    org_options: Mapping[str, Any],
    stack: StackDefinition | None,
    basestack: StackDefinition | None = None,
) -> RemotePolicy:
    """The remote options for a render through ``stack`` (None: ``dynamic``)."""
    values: dict[str, Any] = {}
    for name in _OPTIONS:
        for layer in (stack, basestack):
            if layer is not None and layer.options.get(name) is not None:
                values[name] = layer.options[name]
                break
        else:
            values[name] = org_options.get(name)
    whitelist = values["remote_fullurl_whitelist"]
    return RemotePolicy(
        basepath=values["remote_basepath"] or None,
        fullurl_allow=values["remote_fullurl_allow"] is True,
        whitelist=tuple(whitelist) if isinstance(whitelist, list) else None,
    )


def remote_url(text: str, rules: RemotePolicy, own_host: str | None = None) -> str:
    """The URL the remote text of a render URL names under ``rules``.

    ``UrlNotFound`` (404) when the form is not switched on, ``ApiError`` 403 when the
    whitelist refuses the URL or it holds user information (``user@host``), 404 for a
    full URL without a host. An empty whitelist allows no full URL. A render URL of the
    organization itself (host ``own_host``, its ``{org}.{render_domain}``) that names a
    remote image in turn is 404 (no chains).
    """
    full = _FULL_URL.fullmatch(text)
    if full is None:
        if rules.basepath is None:
            raise UrlNotFound(
                "remote image paths need the remote_basepath option (organization or stack)"
            )
        return rules.basepath.rstrip("/") + "/" + quote(text.lstrip("/"), safe=_PATH_SAFE)
    scheme, rest = full.group(1).lower(), full.group(2)
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise UrlNotFound("remote image URL has no host")
    if "@" in netloc:
        # user@host would let an unanchored whitelist pattern see one host and fetch another
        raise ApiError(403, "remote image URLs with user information are not fetched")
    url = f"{scheme}://{netloc}{slash}{quote(path, safe=_PATH_SAFE)}"
    if own_host is not None and netloc.lower().split(":", 1)[0] == own_host.lower():
        if "/-" in path or path.startswith("-"):
            raise UrlNotFound("a render URL of this organization that names a remote image")
    # The organization's own render host gets no exemption: it would let any anonymous
    # client store images in every organization (one per distinct URL) and probe the
    # server's own ports, with every remote option off.
    if not rules.fullurl_allow:
        raise UrlNotFound(
            "full remote image URLs need the remote_fullurl_allow option (organization or stack)"
        )
    if rules.whitelist is not None and not _whitelisted(url, rules.whitelist):
        raise ApiError(403, "remote image URL is not allowed by remote_fullurl_whitelist")
    return url


def redirect_rule(text: str, rules: RemotePolicy) -> Callable[[str], bool] | None:
    """What every redirect target of the fetch for remote text ``text`` must satisfy: the
    whitelist, for a full URL under one (None: whatever the SSRF guard allows)."""
    if _FULL_URL.fullmatch(text) is None or rules.whitelist is None:
        return None
    patterns = rules.whitelist
    return lambda target: _whitelisted(target, patterns)


def _whitelisted(url: str, patterns: tuple[str, ...]) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    # RE2, not re: the URL is an anonymous client's (stacks/urlpattern.py). A pattern
    # stored before it was checked as RE2 and invalid there allows nothing.
    return any(search(pattern, host) or search(pattern, url) for pattern in patterns)


def remote_identity(binary_hash: str, url: str) -> str:
    """The hash of the image ``url``'s bytes (``binary_hash``) are stored as."""
    return hashlib.sha1(f"{binary_hash}remote:{url}".encode("utf-8", "surrogatepass")).hexdigest()


def _expiry(settings: Settings, since: datetime | None = None) -> str | None:
    """When a record made at ``since`` (default now) expires: None when refresh is off."""
    if settings.remote_refresh_s <= 0:
        return None
    start = since or datetime.now(UTC).replace(microsecond=0)
    return (start + timedelta(seconds=settings.remote_refresh_s)).isoformat()


def _due(record: RemoteImage, settings: Settings) -> bool:
    """Whether ``record`` must be fetched again now: its expiry passed, or it has none (it
    was fetched while refresh was off) and ``remote_refresh_s`` has passed since."""
    now = now_iso()
    if record.expires is not None:
        return record.expired(now)
    due = _expiry(settings, datetime.fromisoformat(record.fetched))
    return due is not None and due <= now


# What a failed fetch answers a render: reason -> status (see docs/render.md)
_STATUS = {
    "refused": 403,
    "invalid": 404,
    "unresolvable": 502,
    "unreachable": 502,
    "status": 502,
    "redirects": 502,
    "timeout": 504,
    "too_large": 502,
}


def _render_error(exc: FetchError, url: str, settings: Settings) -> ApiError:
    if exc.reason == "status" and exc.upstream_status in (404, 410):
        return ApiError(404, f"remote image not found: {url} answered HTTP {exc.upstream_status}")
    if exc.reason == "too_large":
        return ApiError(502, f"remote image {url} is larger than {settings.max_upload_bytes} bytes")
    detail = exc.message.replace("Source URL", "remote image URL")
    return ApiError(_STATUS.get(exc.reason, 502), f"{detail} ({url})")


def _fetch_and_store(
    catalog: CatalogHandle,
    blobs: BlobStore,
    settings: Settings,
    org_id: str,
    url: str,
    stored: SourceImage | None,
    redirect_allowed: Callable[[str], bool] | None,
) -> SourceImage:
    limits = FetchLimits(
        total_timeout=settings.remote_fetch_timeout,
        connect_timeout=settings.remote_fetch_connect_timeout,
        max_redirects=settings.remote_fetch_max_redirects,
        max_bytes=settings.max_upload_bytes,
        allow_private=settings.remote_fetch_allow_private,
    )
    fetched = now_iso()
    with upload_slot(settings, org_id):
        try:
            data, name = fetch(url, limits, redirect_allowed)
        except FetchError as exc:
            raise _render_error(exc, url, settings) from exc
        binary_hash = hashlib.sha1(data).hexdigest()
        if stored is not None and stored.binary_hash == binary_hash:
            # Unchanged bytes: the stored image stays, with its protection, metadata and
            # areas (an upload would fall back to the unprotected first image of the URL).
            catalog.remote_images.postpone(org_id, url, _expiry(settings))
            return stored
        upload = Upload(
            data=data,
            name=safe_name(name, "remote"),
            identity=remote_identity(binary_hash, url),
            # New bytes keep what the owner set that does not depend on the pixels.
            user_metadata=dict(stored.user_metadata) if stored is not None else None,
            protected=stored.protected if stored is not None else False,
        )
        image = ingest(catalog, blobs, settings, org_id, [upload])[0]
    catalog.remote_images.put(org_id, url, image.hash, fetched=fetched, expires=_expiry(settings))
    return image


def remote_image(
    catalog: CatalogHandle,
    blobs: BlobStore,
    settings: Settings,
    org_id: str,
    url: str,
    redirect_allowed: Callable[[str], bool] | None = None,
) -> SourceImage:
    """The source image ``url`` is stored as in the organization, fetched and stored first
    when there is none yet (or it was deleted), or fetched again when its record expired.

    Errors of a fetch: 403 refused by the SSRF guard, 404 the remote answered 404/410,
    502 other remote failures (unreachable, other statuses, too large), 504 timeout; the
    upload checks' errors (422 not an image, 400 over a budget) and 503 busy as for uploads.
    """
    record = catalog.remote_images.get(org_id, url)
    image = catalog.images.get_exact(org_id, record.hash) if record is not None else None
    if image is not None and image.deleted_at is not None:
        image = None
    if record is not None and image is not None and not _due(record, settings):
        return image
    try:
        return _fetch_and_store(catalog, blobs, settings, org_id, url, image, redirect_allowed)
    except ApiError as exc:
        if image is None:
            raise
        # The stored image stays until a refresh succeeds; try again after a period.
        log.warning("refresh of remote image %s failed (%s); serving the stored one", url, exc)
        catalog.remote_images.postpone(org_id, url, _expiry(settings))
        return image
