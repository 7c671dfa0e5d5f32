"""The Flask application factory and the per-request resources it attaches."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request

from webapp import accesslog, tokens
from webapp.blobs import BlobStore, StorageFull, StoreReadOnly, StoreUnavailable, open_store
from webapp.catalog import Catalog
from webapp.errors import (
    INSUFFICIENT_STORAGE,
    READ_ONLY,
    ApiError,
    register_error_handlers,
    storage_fault,
)
from webapp.httpworker import finish_body
from webapp.rendercache import RenderCache
from webapp.settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app instance from settings (see ``webapp.settings``).

    Touches no libvips state: under gunicorn this runs in each worker after the fork.
    """
    settings = load_settings(config)
    data_dir = Path(settings.data_dir)
    if not data_dir.is_dir():
        data_dir.mkdir(parents=True, exist_ok=True)
    try:
        (data_dir / "tmp").mkdir(exist_ok=True)  # the health probe's (any blob store)
    except OSError:
        pass  # a read-only data directory: the health probe reports it
    app = Flask("webapp")
    from webapp.uploadform import UploadRequest

    app.request_class = UploadRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    # Non-file multipart fields (metadata JSON) may be large-ish, but bounded.
    app.config["MAX_FORM_MEMORY_SIZE"] = 16 * 1024 * 1024
    app.extensions["cropstack.settings"] = settings
    app.extensions["cropstack.catalog_path"] = str(data_dir / "catalog.db")
    app.extensions["cropstack.blobs"] = start_store(settings, required=False)
    prepare_catalog(app.extensions["cropstack.catalog_path"], settings.busy_timeout_ms)
    # Held for the app's life: while one connection is open SQLite keeps the -shm file,
    # so reads keep working when the disk fills up (a new -shm would need free space).
    app.extensions["cropstack.catalog_anchor"] = Catalog(
        app.extensions["cropstack.catalog_path"], busy_timeout_ms=settings.busy_timeout_ms
    )
    app.extensions["cropstack.blobs"].sweep_partial()
    app.extensions["cropstack.render_cache"] = RenderCache(
        data_dir / "cache", settings.render_cache_max_bytes
    )

    register_error_handlers(app)
    accesslog.install(app)  # first, so its after_request runs last and sees the answer
    app.after_request(_no_sniffing)
    app.after_request(_finish_body)
    app.teardown_appcontext(_close_catalog)

    from webapp.routes import register_routes

    register_routes(app)
    return app


def start_store(settings: Settings, *, required: bool = True) -> BlobStore:
    """The blob store of ``settings``, checked.

    ``required``: raise ``StoreUnavailable`` when it cannot be reached (``cropstack
    serve`` checks this once, before starting: a node without its originals must not
    start). Worker processes start with ``required=False`` and log the error instead: a
    worker recycled while the store is briefly away must not take the whole server down
    (gunicorn stops when a worker fails to boot); /healthz reports the store meanwhile.
    A store that answers but refuses writes (read-only, full) is served as it is, like a
    read-only data directory: reads work, writes answer 503/507.
    """
    store = open_store(settings.blob_store, settings.data_dir)
    try:
        store.probe()
    except (StoreReadOnly, StorageFull) as exc:
        log.warning("%s: serving reads, refusing writes", exc)
    except StoreUnavailable as exc:
        if required:
            raise
        log.error("%s: answering 503 until it is back", exc)
    return store


def prepare_catalog(path: str, busy_timeout_ms: int) -> bool:
    """Create or upgrade the catalog schema; False when the data directory refuses writes.

    A read-only or full data directory that already holds a catalog is served as it is
    (reads work, writes answer 503/507); without a readable catalog, start-up fails.
    """
    try:
        Catalog.initialise(path, busy_timeout_ms=busy_timeout_ms)
        return True
    except (sqlite3.OperationalError, ApiError) as exc:
        refused = exc if isinstance(exc, ApiError) else storage_fault(exc)
        if refused is None or refused.message not in (READ_ONLY, INSUFFICIENT_STORAGE):
            raise
        catalog = Catalog(path, busy_timeout_ms=busy_timeout_ms)
        try:
            catalog.query("SELECT 1 FROM sourceimages LIMIT 1")  # raises if no schema
        finally:
            catalog.close()
        log.warning("catalog %s cannot be written (%s): serving reads, refusing writes", path, exc)
        return False


def _no_sniffing(response: Response) -> Response:
    # Browsers must take every Content-Type as sent (an original must never be sniffed
    # into HTML or script); see docs/render.md "Headers".
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def settings() -> Settings:
    """The settings of the current app."""
    return current_app.extensions["cropstack.settings"]


def token_secret() -> bytes:
    """The secret JWTs are signed with (webapp.tokens), read once per app."""
    secret = current_app.extensions.get("cropstack.token_secret")
    if secret is None:
        config = settings()
        secret = tokens.server_secret(config.token_secret, config.data_dir)
        current_app.extensions["cropstack.token_secret"] = secret
    return secret


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


def _finish_body(response: Response) -> Response:
    """Drop the unread rest of a request body cheaply before answering (webapp/httpworker)."""
    finish_body(request.environ, settings().max_upload_bytes)
    return response
