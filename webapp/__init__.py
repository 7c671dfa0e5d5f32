"""The web layer: Flask app factory, HTTP API, SQLite catalog, blob storage, auth, CLI."""

from webapp.app import create_app

__all__ = ["create_app"]
