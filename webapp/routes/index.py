"""The API root: ``GET /`` lists the resources a valid key can reach, as rokka does."""

from __future__ import annotations

from flask import Blueprint, Response

from webapp.auth import current_principal
from webapp.errors import json_response

bp = Blueprint("index", __name__)

#: First path segments of the management API that this server implements, as rokka
#: lists them.
RESOURCES: tuple[str, ...] = (
    "/operations",
    "/organizations",
    "/sourceimages",
    "/stacks",
    "/stackoptions",
    "/users",
    "/stats",
)


@bp.get("/")
def index() -> Response:
    """200 ``{"resources": [...], "environment": "production"}`` for a valid key; 403
    without one (clients call it to check a key)."""
    current_principal()
    return json_response({"resources": list(RESOURCES), "environment": "production"})
