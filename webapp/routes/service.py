"""Service routes without authentication: health, operation and option listings."""

from __future__ import annotations

from flask import Blueprint, Response

from stacks.operations import describe_operations
from stacks.options import describe_stack_options
from webapp.errors import json_response

bp = Blueprint("service", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 ``{"status": "ok"}`` when the catalog answers."""
    from webapp.app import catalog

    catalog().query("SELECT 1")
    return json_response({"status": "ok"})


@bp.get("/operations")
def operations() -> Response:
    """Every implemented operation with its parameters (no auth, as rokka)."""
    return json_response(describe_operations())


@bp.get("/stackoptions")
def stackoptions() -> Response:
    """Every stack option with type, default and range (no auth, as rokka)."""
    return json_response(describe_stack_options())
