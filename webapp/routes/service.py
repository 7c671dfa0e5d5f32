"""Service routes without authentication: health, operation and option listings."""

from __future__ import annotations

from flask import Blueprint, Response

from webapp.errors import json_response

bp = Blueprint("service", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 ``{"status": "ok"}`` when the catalog answers."""
    from webapp.app import catalog

    catalog().query("SELECT 1")
    return json_response({"status": "ok"})
