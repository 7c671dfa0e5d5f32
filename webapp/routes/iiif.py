"""IIIF Image API 3.0: ``/{org}/_iiif[/3]/{hash}/...``, and ``/_iiif[/3]/{hash}/...`` on the
``{org}.{render_domain}`` host, as rokka serves it (docs/render.md "IIIF").

``.../{hash}`` redirects to ``.../{hash}/info.json``; ``info.json`` describes the image;
``.../{region}/{size}/{rotation}/{quality}.{format}`` renders through stacks/iiif.py's plan
and the same cache, budgets and headers as any render URL. Every answer allows any origin
(IIIF viewers load tiles cross-origin).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, redirect, request

from stacks.errors import UrlNotFound
from stacks.iiif import IiifError, info, parse, plan
from stacks.url import HASH
from webapp.app import catalog
from webapp.routes.render import (
    CACHE_CONTROL,
    answer,
    check_signature,
    find_image,
    org_from_host,
    refuse_font,
)

bp = Blueprint("iiif", __name__)

PREFIX = "_iiif"
CONTEXT = "http://iiif.io/api/image/3/context.json"
LD_JSON = f'application/ld+json;profile="{CONTEXT}"'


@bp.after_request
def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route(f"/<org_name>/{PREFIX}/<path:rest>", methods=["GET", "HEAD"])
def iiif_by_path(org_name: str, rest: str) -> Response:
    """IIIF under the organization's path prefix."""
    return _serve(org_name, rest, org_prefix=f"/{org_name}")


@bp.route(f"/{PREFIX}/<path:rest>", methods=["GET", "HEAD"])
def iiif_by_host(rest: str) -> Response:
    """IIIF on the ``{org}.{render_domain}`` host."""
    hosted = org_from_host()
    if hosted is None:
        raise UrlNotFound("not found")
    return _serve(hosted, rest, org_prefix="")


def _serve(org_name: str, rest: str, *, org_prefix: str) -> Response:
    parts = rest.split("/")
    if parts[0] in ("2", "3"):
        if parts[0] == "2":
            raise IiifError("IIIF Image API 2 is not served; use /_iiif/3/")
        parts = parts[1:]
    if not parts or not parts[0]:
        raise UrlNotFound("no image identifier")
    ident, tail = parts[0], parts[1:]
    if not HASH.fullmatch(ident):  # also keeps LIKE wildcards out of the prefix lookup
        raise UrlNotFound(f"image {ident[:64]} not found")
    org = catalog().accounts.org_by_name(org_name)
    if org is None:
        raise UrlNotFound(f"organization {org_name} not found")
    image = find_image(org, ident)
    signed_until = None
    if image["protected"] or org["options"].get("protect_dynamic_stack"):
        signed_until = check_signature(org, org_prefix)
    refuse_font(image)
    base_uri = request.base_url
    if not tail or tail == [""]:
        # the image's base URI: its description, by a 303 as the specification asks
        return redirect(base_uri.rstrip("/") + "/info.json", code=303)
    if tail == ["info.json"]:
        return _info(base_uri[: -len("/info.json")], image)
    parsed = parse("/".join(tail), image["width"], image["height"])
    render_plan = plan(parsed, image["width"], image["height"])
    return answer(org, image, render_plan, stack=PREFIX, signed_until=signed_until)


def _info(base_uri: str, image: dict) -> Response:
    body = json.dumps(info(base_uri, image["width"], image["height"]))
    wants_ld = "application/ld+json" in request.headers.get("Accept", "")
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept"}
    return Response(
        body, status=200, headers=headers, content_type=LD_JSON if wants_ld else "application/json"
    )
