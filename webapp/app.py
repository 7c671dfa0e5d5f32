"""The Flask application factory and the per-request resources it attaches."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app, g, request

from webapp import accesslog, tokens, usagecounter
from webapp.blobs import BlobStore, StorageFull, StoreReadOnly, StoreUnavailable, open_store
from webapp.catalog import Catalog, CatalogBackend, SqliteBackend, open_backend
from webapp.catalog.errors import CatalogFull, CatalogReadOnly, CatalogUnavailable
from webapp.errors import register_error_handlers, storage_fault
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
    app.extensions["cropstack.blobs"] = start_store(settings, required=False)
    backend = open_backend(settings)
    app.extensions["cropstack.catalog"] = backend
    try:
        prepare_catalog(backend)
    except CatalogUnavailable as exc:
        # As for the blob store: `cropstack serve` checked the database before starting;
        # a worker recycled while it is briefly away answers 503 (and /healthz says so)
        # instead of failing to boot, which would stop the whole server.
        log.error("catalog unavailable (%s): answering 503 until it is back", exc.detail)
    if isinstance(backend, SqliteBackend):
        app.extensions["cropstack.catalog_path"] = backend.path
        # Held for the app's life: while one connection is open SQLite keeps the -shm
        # file, so reads keep working when the disk fills up (a new -shm needs space).
        anchor = backend.open()
        anchor.ping()
        app.extensions["cropstack.catalog_anchor"] = anchor
    app.extensions["cropstack.blobs"].sweep_partial()
    app.extensions["cropstack.render_cache"] = RenderCache(
        data_dir / "cache", settings.render_cache_max_bytes
    )

    register_error_handlers(app)
    accesslog.install(app)  # first, so its after_request runs last and sees the answer
    # render counts for GET /stats, flushed to the catalog every stats_flush_seconds
    counter = usagecounter.UsageCounter(backend.open, settings.stats_flush_seconds)
    usagecounter.install(app, counter)
    app.after_request(_no_sniffing)
    app.after_request(_finish_body)
    app.teardown_appcontext(_close_catalog)

    from webapp.routes import register_routes

    register_routes(app)
    if isinstance(backend, SqliteBackend) and settings.render_cache:
        from webapp.hitmemo import HitMemo

        app.wsgi_app = HitMemo(  # type: ignore[method-assign]
            app.wsgi_app,
            settings=settings,
            cache=app.extensions["cropstack.render_cache"],
            catalog_path=backend.path,
            counter=usagecounter.counter_of(app),
        )
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


def prepare_catalog(backend: CatalogBackend) -> bool:
    """Create or upgrade the catalog schema; False when the catalog refuses writes.

    A read-only or full SQLite data directory that already holds a catalog is served as
    it is (reads work, writes answer 503/507); without a readable catalog, start-up
    fails. A database that cannot be reached raises ``CatalogUnavailable``.
    """
    try:
        backend.migrate()
        return True
    except (sqlite3.OperationalError, CatalogReadOnly, CatalogFull) as exc:
        if isinstance(exc, sqlite3.OperationalError):
            fault = storage_fault(exc)
            if fault is None or fault.status not in (503, 507):
                raise
        if not isinstance(backend, SqliteBackend):
            raise
        from webapp.catalog.sqlite import open_read_only_check

        open_read_only_check(backend.path, backend.busy_timeout_ms)  # raises if no schema
        log.warning(
            "catalog %s cannot be written (%s): serving reads, refusing writes", backend.path, exc
        )
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
    """The secret JWTs are signed with (webapp.tokens), read once per app: the
    ``token_secret`` setting; else, with the catalog in the data directory, the data
    directory's own; else (PostgreSQL, shared by several nodes) the catalog's."""
    secret = current_app.extensions.get("cropstack.token_secret")
    if secret is None:
        config = settings()
        if config.token_secret or isinstance(catalog_backend(), SqliteBackend):
            secret = tokens.server_secret(config.token_secret, config.data_dir)
        else:
            secret = tokens.shared_secret(catalog().secrets)
        current_app.extensions["cropstack.token_secret"] = secret
    return secret


def blobs() -> BlobStore:
    """The blob store of the current app."""
    return current_app.extensions["cropstack.blobs"]


def render_cache() -> RenderCache:
    """The render cache of the current app."""
    return current_app.extensions["cropstack.render_cache"]


def catalog_backend() -> CatalogBackend:
    """The catalog backend of the current app (SQLite file or PostgreSQL pool)."""
    return current_app.extensions["cropstack.catalog"]


def catalog() -> Catalog:
    """This request's catalog handle, opened on first use and closed at teardown."""
    if "catalog" not in g:
        g.catalog = catalog_backend().open()
    return g.catalog


def _close_catalog(_exc: BaseException | None) -> None:
    handle = g.pop("catalog", None)
    if handle is not None:
        handle.close()


def _finish_body(response: Response) -> Response:
    """Drop the unread rest of a request body cheaply before answering (webapp/httpworker)."""
    finish_body(request.environ, settings().max_upload_bytes)
    return response
