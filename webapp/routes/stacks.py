"""Routes for stacks."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("stacks", __name__)
