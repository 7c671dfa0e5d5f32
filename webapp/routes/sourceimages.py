"""Routes for sourceimages."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sourceimages", __name__)
