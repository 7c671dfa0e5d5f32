"""Stack management: ``/stacks/{org}[/{name}[/cache]]``.

Stacks are validated when saved by the same code that parses render URLs
(``stacks.stack.parse_stack_json``), so every stored stack renders.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from stacks.stack import parse_stack_json, validate_stack_name
from webapp.app import catalog, render_cache
from webapp.auth import require
from webapp.catalog.records import Stack
from webapp.errors import ApiError, json_response
from webapp.wire import json_body, query_bool, query_int

bp = Blueprint("stacks", __name__)


def stack_object(org_name: str, stored: Stack, *, link: bool) -> dict[str, Any]:
    """rokka's stack object; ``link`` only on single-stack GETs, as recorded."""
    body: dict[str, Any] = {
        "name": stored.name,
        "organization": org_name,
        "created": stored.created,
        **stored.definition,
    }
    if link:
        body["link"] = f"/stacks/{org_name}/{stored.name}"
    return body


@bp.put("/stacks/<org>/<name>")
def put_stack(org: str, name: str) -> Response:
    """Create (201) or, with ``?overwrite=true``, replace (200) a stack; 409 if it exists.

    The basestack rules are the catalog's, checked in the transaction that writes."""
    org_row = require(org, "stacks:write")
    definition = parse_stack_json(json_body(), name)
    written = catalog().stacks.put(
        org_row.id, name, definition.to_json(), overwrite=query_bool("overwrite")
    )
    if not written.created:
        render_cache().purge_stack(org_row.id, name)
    return json_response(
        stack_object(org, written.stack, link=False), 201 if written.created else 200
    )


@bp.get("/stacks/<org>")
def list_stacks(org: str) -> Response:
    """``{"items": [stack...]}`` ordered by name; ``limit`` 1..1000, ``offset``."""
    org_row = require(org, "stacks:read")
    limit = query_int("limit", 1000, 1, 1000)
    offset = query_int("offset", 0, 0, 10**9)
    items = catalog().stacks.list(org_row.id, limit=limit, offset=offset)
    return json_response({"items": [stack_object(org, s, link=False) for s in items]})


@bp.get("/stacks/<org>/<name>")
def get_stack(org: str, name: str) -> Response:
    """One stack, with its ``link``; 404 if unknown."""
    org_row = require(org, "stacks:read")
    stored = catalog().stacks.get(org_row.id, name)
    if stored is None:
        raise ApiError(404, f"stack {name} not found")
    return json_response(stack_object(org, stored, link=True))


@bp.delete("/stacks/<org>/<name>")
def delete_stack(org: str, name: str) -> Response:
    """204; 404 if unknown; 409 while another stack uses it as its basestack."""
    org_row = require(org, "stacks:write")
    stacks = catalog().stacks
    stacks.delete(org_row.id, name)  # 404 unknown, 409 while it is a basestack
    render_cache().purge_stack(org_row.id, name)
    return Response(status=204)


@bp.delete("/stacks/<org>/<name>/cache")
def purge_stack_cache(org: str, name: str) -> Response:
    """Forget cached renders of one stack (``*``: every stack, ``dynamic`` included), on
    every node sharing the catalog."""
    org_row = require(org, "stacks:write")
    if name == "*":
        names = catalog().stacks.names(org_row.id)
        names.append("dynamic")
    else:
        if name != "dynamic":
            validate_stack_name(name)
            if catalog().stacks.get(org_row.id, name) is None:
                raise ApiError(404, f"stack {name} not found")
        names = [name]
    # Counted in the catalog first, so every node forgets its copies; then this node's
    # files go (space), which the other nodes' evictions reclaim by themselves.
    catalog().purges.purge_stack(org_row.id, name)
    for each in names:
        render_cache().purge_stack(org_row.id, each)
    return json_response({"status": "ok"})
