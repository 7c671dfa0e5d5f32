"""Source image aliases: ``/sourceimages/{org}/alias/{name}[/cache]`` (docs/sourceimages.md),
and the lookup of ``-_{name}_-`` in render URLs (docs/render.md "Aliases").

An alias is an organization's stable name for one of its images; repointing it changes
what its render URLs show. Names are ``[A-Za-z0-9_]``, 1 to 100 characters, case-sensitive.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response

from stacks.errors import UrlNotFound
from stacks.url import ALIAS_REF, HASH
from webapp.app import catalog, render_cache
from webapp.auth import require
from webapp.catalog.records import Alias, Organization
from webapp.errors import ApiError, json_response, not_found
from webapp.wire import json_body, query_bool

bp = Blueprint("aliases", __name__)

#: The name inside ``-_{name}_-`` (the same rule as the render URL's).
NAME = re.compile(ALIAS_REF.pattern[2:-2])
_BODY_BYTES = 4096  # {"hash": "..."} needs well under this
ONE = "/sourceimages/<org>/alias/<name>"


def alias_object(org_name: str, alias: Alias) -> dict[str, Any]:
    """rokka's alias object: ``organization``, ``alias``, ``hash`` (and ``created``)."""
    return {
        "organization": org_name,
        "alias": alias.name,
        "hash": alias.hash,
        "created": alias.created,
    }


def _existing(org: Organization, name: str) -> Alias:
    """The alias, else 404 (a name that could never be an alias is a 404 too)."""
    found = catalog().aliases.get(org.id, name) if NAME.fullmatch(name) else None
    if found is None:
        raise not_found(f"alias {name[:100]} not found")
    return found


def _target_hash(org: Organization) -> str:
    """The full hash of the live image the body's ``hash`` names (hash, short hash or
    unique prefix); 400 when the body is malformed or names no image of ``org``."""
    body = json_body(max_bytes=_BODY_BYTES)
    ref = body.get("hash") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not HASH.fullmatch(ref):
        raise ApiError(400, 'body must be {"hash": "<image hash>"} (6 to 40 lowercase hex)')
    image = catalog().images.find(org.id, ref)
    if image is None:
        raise ApiError(400, f"source image {ref} not found")
    return image.hash


@bp.put(ONE)
def put_alias(org: str, name: str) -> Response:
    """Create (201) or, with ``?overwrite=true``, repoint (200) an alias; 409 if it exists."""
    organization = require(org, "images:write")
    if not NAME.fullmatch(name):
        raise ApiError(400, "alias names are 1 to 100 characters of [A-Za-z0-9_]")
    image_hash = _target_hash(organization)
    written = catalog().aliases.put(
        organization.id, name, image_hash, overwrite=query_bool("overwrite")
    )
    return json_response(alias_object(org, written.alias), 201 if written.created else 200)


@bp.get(ONE)
def get_alias(org: str, name: str) -> Response:
    """The alias and the hash it points to now; 404 if unknown."""
    organization = require(org, "images:read")
    return json_response(alias_object(org, _existing(organization, name)))


@bp.delete(ONE)
def delete_alias(org: str, name: str) -> Response:
    """204; 404 if unknown. Its render URLs answer 404 from now on."""
    organization = require(org, "images:write")
    catalog().aliases.delete(organization.id, _existing(organization, name).name)
    return Response(status=204)


@bp.delete(ONE + "/cache")
def purge_alias_cache(org: str, name: str) -> Response:
    """Forget the cached renders of the alias's image: 200 with ``status`` and ``items``,
    the alias render paths (``/{org}/{stack}/-_{name}_-.{ext}``) that were cached."""
    organization = require(org, "images:write")
    alias = _existing(organization, name)
    catalog().purges.purge_image(organization.id, alias.hash)  # every node's copies
    purged = render_cache().purge_image(organization.id, alias.hash)
    # IIIF renders are purged too, but an alias has no IIIF URL to list
    items = [f"/{org}/{stack}/-_{alias.name}_-.{ext}" for stack, ext in purged if stack != "_iiif"]
    return json_response({"status": "ok", "items": items})


def aliased_hash(org: dict[str, Any], name: str) -> str:
    """The hash the alias ``name`` of ``org`` points to, else of its ``render_org_fallback``
    organization (one level, as images are looked up there); 404 when neither has it."""
    found = catalog().aliases.get(org["id"], name)
    fallback = org["options"].get("render_org_fallback")
    if found is None and isinstance(fallback, str) and fallback != org["name"]:
        other = catalog().accounts.org_by_name(fallback)
        if other is not None:
            found = catalog().aliases.get(other["id"], name)
    if found is None:
        raise UrlNotFound(f"alias {name} not found")
    return found.hash
