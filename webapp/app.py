"""The Flask application factory and the per-request resources it attaches."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g

from webapp.catalog import Catalog
from webapp.errors import register_error_handlers
from webapp.rendercache import RenderCache
from webapp.settings import Settings, load_settings
from webapp.storage import BlobStore


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app instance from settings (see ``webapp.settings``).

    Touches no libvips state: under gunicorn this runs in each worker after the fork.
    """
    settings = load_settings(config)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = Flask("webapp")
    from webapp.uploadform import UploadRequest

    app.request_class = UploadRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    # Non-file multipart fields (metadata JSON) may be large-ish, but bounded.
    app.config["MAX_FORM_MEMORY_SIZE"] = 16 * 1024 * 1024
    app.extensions["cropstack.settings"] = settings
    app.extensions["cropstack.catalog_path"] = str(data_dir / "catalog.db")
    app.extensions["cropstack.blobs"] = BlobStore(data_dir)
    Catalog.initialise(
        app.extensions["cropstack.catalog_path"], busy_timeout_ms=settings.busy_timeout_ms
    )
    app.extensions["cropstack.blobs"].sweep_tmp()
    app.extensions["cropstack.render_cache"] = RenderCache(data_dir / "cache")

    register_error_handlers(app)
    app.teardown_appcontext(_close_catalog)

    from webapp.routes import register_routes

    register_routes(app)
    return app


def settings() -> Settings:
    """The settings of the current app."""
    return current_app.extensions["cropstack.settings"]


def blobs() -> BlobStore:
    """The blob store of the current app."""
    return current_app.extensions["cropstack.blobs"]


def render_cache() -> RenderCache:
    """The render cache of the current app."""
    return current_app.extensions["cropstack.render_cache"]


def catalog() -> Catalog:
    """This request's catalog handle, opened on first use and closed at teardown."""
    if "catalog" not in g:
        g.catalog = Catalog(
            current_app.extensions["cropstack.catalog_path"],
            busy_timeout_ms=settings().busy_timeout_ms,
        )
    return g.catalog


def _close_catalog(_exc: BaseException | None) -> None:
    handle = g.pop("catalog", None)
    if handle is not None:
        handle.close()
