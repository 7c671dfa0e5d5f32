"""Routes for the people who run the service: ``GET /metrics`` and ``GET /openapi.json``."""

from __future__ import annotations

from flask import Blueprint, Response

from webapp.errors import json_response, not_found

bp = Blueprint("operator", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition of every worker's metrics (webapp/metrics.py); 404 when
    the ``metrics`` setting is off. No authentication: the proxy keeps it private."""
    from webapp.app import render_cache, settings
    from webapp.metrics import exposition

    if not settings().metrics:
        raise not_found()
    body, content_type = exposition(render_cache().counted_bytes)
    return Response(body, status=200, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of the management API (webapp/openapi.py)."""
    from webapp.openapi import document

    return json_response(document())
