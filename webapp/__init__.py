"""The web layer: Flask app factory, HTTP API, SQLite catalog, blob storage, auth, CLI."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `cropstack serve` can point prometheus_client at its multiprocess directory
    # (an environment variable read once, at import) before anything imports the app.
    if name == "create_app":
        from webapp.app import create_app

        return create_app
    raise AttributeError(f"module 'webapp' has no attribute {name!r}")
