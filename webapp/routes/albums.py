"""Albums on the render host: ``/{org}/_albums/{album}/all.json`` and ``favorites.json``
(also ``/_albums/...`` on the ``{org}.{render_domain}`` host), as rokka.js's
``render.imagesByAlbum`` and rokka's gallery embed read them (docs/render.md "Albums").

Public, like render URLs: no key is asked for, so an answer shows only what a gallery
needs of the images the album lists (webapp/catalog/albums.py says which) and at most
``MAX_LIMIT`` of them per request; ``total`` says how many there are in all.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, request

from stacks.errors import UrlNotFound
from webapp.app import catalog
from webapp.catalog.records import AlbumImage
from webapp.routes.render import org_from_host
from webapp.wire import query_int

bp = Blueprint("albums", __name__)

PREFIX = "_albums"
#: The two files of an album, and whether each lists only favorites.
FILES = {"all.json": False, "favorites.json": True}
#: Most images one answer lists (``?limit=``, default the same); ``?offset=`` pages on.
MAX_LIMIT = 1000
MAX_OFFSET = 100_000
#: Longest album name, characters (a longer one names no album: 404).
MAX_ALBUM_CHARS = 1000
#: Album answers change whenever user metadata does: cached briefly, revalidated by ETag.
CACHE_CONTROL = "public, max-age=60"


@bp.after_request
def _cors(response: Response) -> Response:
    # galleries fetch albums from other origins; the answer is public anyway
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route(f"/<org_name>/{PREFIX}/<album>/<file>", methods=["GET", "HEAD"])
def album_by_path(org_name: str, album: str, file: str) -> Response:
    """An album under the organization's path prefix."""
    return _serve(org_name, album, file)


@bp.route(f"/{PREFIX}/<album>/<file>", methods=["GET", "HEAD"])
def album_by_host(album: str, file: str) -> Response:
    """An album on the ``{org}.{render_domain}`` host."""
    hosted = org_from_host()
    if hosted is None:
        raise UrlNotFound("not found")
    return _serve(hosted, album, file)


def image_object(image: AlbumImage) -> dict[str, Any]:
    """What an album shows of one image."""
    return {
        "hash": image.hash,
        "short_hash": image.short_hash,
        "name": image.name,
        "format": image.format,
        "mimetype": image.mimetype,
        "width": image.width,
        "height": image.height,
        "favorite": image.favorite,
    }


def _serve(org_name: str, album: str, file: str) -> Response:
    favorites = FILES.get(file)
    if favorites is None:
        raise UrlNotFound(f"albums have {' and '.join(FILES)}, not {file[:64]}")
    limit = query_int("limit", MAX_LIMIT, 0, MAX_LIMIT)
    offset = query_int("offset", 0, 0, MAX_OFFSET)
    org = catalog().accounts.org_by_name(org_name)
    if org is None:
        raise UrlNotFound(f"organization {org_name[:100]} not found")
    if not album.strip() or len(album) > MAX_ALBUM_CHARS:
        raise UrlNotFound("album not found")
    albums = catalog().albums
    page = albums.page(org.id, album, favorites=favorites, limit=limit, offset=offset)
    # An album exists while it lists an image; one without favorites still has a
    # favorites.json (galleries fetch both).
    if page.total == 0 and (
        not favorites or albums.page(org.id, album, favorites=False, limit=0, offset=0).total == 0
    ):
        raise UrlNotFound(f"album {album[:100]} not found")
    listed = [image_object(i) for i in page.images]
    # ``items`` as rokka's gallery embed reads it, ``images`` as rokka.js's tests do
    payload = {"album": album, "total": page.total, "items": listed, "images": listed}
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if request.if_none_match.contains_weak(etag.strip('"')):
        return Response(status=304, headers=headers)
    response = Response(body, status=200, headers=headers)
    response.headers["Content-Type"] = "application/json"
    return response
