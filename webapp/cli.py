"""The ``cropstack`` command line: ``serve``, ``users create``, ``gc`` and ``settings-doc``.

``serve`` runs the app under gunicorn (a production WSGI server) with N worker
processes, each with a few threads. The app is created inside each worker after the
fork (no ``preload``), so libvips is never touched before a fork: libvips hangs in
children forked after the parent used it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

# bytes of "METHOD target HTTP/1.1": gunicorn's largest allowed value (414 past it).
REQUEST_LINE_MAX = 8190


def _serve(args: argparse.Namespace) -> int:
    # libvips reads these when it starts; set them before any worker imports pyvips.
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    if args.signup is not None:
        overrides["signup"] = args.signup
    if args.render_domain is not None:
        overrides["render_domain"] = args.render_domain

    from webapp.settings import load_settings

    try:
        settings = load_settings(overrides)  # fail fast on bad settings, in the master
    except ValueError as exc:
        print(f"cropstack: {exc}", file=sys.stderr)
        return 2
    if not os.path.isdir(settings.data_dir):
        os.makedirs(settings.data_dir)
    from webapp.app import start_store
    from webapp.blobs import StoreUnavailable

    # Checked in the master (each worker checks again): an unreachable store is one
    # clear line and exit status 1, not a worker boot failure with a stack trace.
    try:
        start_store(settings)
    except StoreUnavailable as exc:
        print(f"cropstack: cannot start: {exc}", file=sys.stderr)
        return 1
    failed = _prepare_catalog(settings)
    if failed is not None:
        return failed

    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                # Threads, not more processes, for I/O waits: pyvips releases the GIL.
                # gthread, with gunicorn's own error pages in the JSON error shape.
                "worker_class": "webapp.httpworker.JsonErrorWorker",
                "threads": args.threads,
                # No preload: each worker imports and creates the app after the fork, so
                # neither libvips nor an SQLite connection ever crosses a fork.
                "preload_app": False,
                "timeout": args.timeout,
                "graceful_timeout": 10,
                # Recycle workers now and then against heap fragmentation (libvips/glibc);
                # the jitter keeps them from restarting all at once.
                "max_requests": args.max_requests,
                "max_requests_jitter": max(args.max_requests // 10, 0),
                "accesslog": "-" if args.access_log else None,
                # gunicorn >= 23 opens ~/.gunicorn/gunicorn.ctl by default; two servers on
                # one host would fight over it, and we do not use it.
                "control_socket_disable": True,
                # Request limits (docs/operations.md "Request limits"): the request line
                # at gunicorn's maximum, so a render path of the documented 4096
                # characters fits with its query; past them 414/431 in JSON.
                "limit_request_line": REQUEST_LINE_MAX,
                "limit_request_fields": 100,
                "limit_request_field_size": 8190,
            }
            for name, value in options.items():
                if name in self.cfg.settings:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            from webapp.app import create_app

            return create_app(overrides)

    _Server().run()
    return 0


def _prepare_catalog(settings: Any) -> int | None:
    """Create or upgrade the schema once in the master (no libvips), so workers start on
    a ready catalog (create_app checks again: nothing to apply). A read-only data
    directory with a catalog starts (reads only). A database that cannot be reached is
    a one-line message and exit status 1; a malformed database URL exit status 2."""
    from webapp.app import prepare_catalog
    from webapp.catalog import open_backend
    from webapp.catalog.errors import CatalogUnavailable

    try:
        backend = open_backend(settings)
    except ValueError as exc:
        print(f"cropstack: {exc}", file=sys.stderr)
        return 2
    try:
        prepare_catalog(backend)
    except CatalogUnavailable as exc:
        print(f"cropstack: cannot reach the catalog database: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        backend.close()
    return None


def _settings_doc(_args: argparse.Namespace) -> int:
    from webapp.settings import settings_markdown

    sys.stdout.write(settings_markdown())
    return 0


def _gc(args: argparse.Namespace) -> int:
    from webapp.app import prepare_catalog
    from webapp.blobs import StorageFull, StoreUnavailable
    from webapp.catalog import open_backend
    from webapp.gc import collect
    from webapp.settings import load_settings

    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    if args.grace is not None:
        overrides["blob_gc_grace_s"] = args.grace
    settings = load_settings(overrides)
    backend = open_backend(settings)
    try:
        prepare_catalog(backend)
    finally:
        backend.close()
    try:
        report = collect(settings)
    except (StoreUnavailable, StorageFull) as exc:
        print(f"cropstack: gc stopped: {exc}", file=sys.stderr)
        return 1
    print(
        f"purged {report.purged_rows} expired images, removed {report.removed_blobs} blobs "
        f"and {report.removed_tmp} temporary files"
    )
    return 0


def _fail(message: str) -> int:
    """Print a one-line error for the operator; the exit status of bad input."""
    print(f"cropstack: {message}", file=sys.stderr)
    return 2


def _users_create(args: argparse.Namespace) -> int:
    """Create a user, its first key and a new organization it administers, as ``POST
    /users`` does (same validation); print ``{"id", "email", "api_key"}`` as JSON."""
    import json
    import sqlite3

    from webapp.accountfields import parse_email, parse_org_name
    from webapp.app import prepare_catalog
    from webapp.catalog import open_backend
    from webapp.catalog.errors import CatalogBusy, CatalogError, CatalogUnavailable, Conflict
    from webapp.errors import ApiError
    from webapp.settings import load_settings

    if args.email is None or args.organization is None:
        return _fail("users create needs --email and --organization")
    try:
        email = parse_email(args.email, field="--email")
        org_name = parse_org_name(args.organization, field="--organization")
        settings = load_settings({"data_dir": args.data_dir})
    except ApiError as exc:
        return _fail(exc.message)
    except ValueError as exc:
        return _fail(str(exc))
    busy = "cropstack: the catalog is busy (a long write elsewhere); try again"
    backend = open_backend(settings)
    try:
        try:
            if not settings.database_url:
                os.makedirs(settings.data_dir, exist_ok=True)
            prepare_catalog(backend)
            catalog = backend.open()
        except CatalogBusy:
            print(busy, file=sys.stderr)
            return 1
        except CatalogUnavailable as exc:
            return _fail(f"cannot reach the catalog database: {exc.detail}")
        except (OSError, sqlite3.Error, CatalogError) as exc:
            return _fail(f"cannot open the catalog in {settings.data_dir}: {exc}")
        try:
            user = catalog.accounts.signup(email, org_name)
        except CatalogBusy:
            print(busy, file=sys.stderr)
            return 1
        except Conflict as exc:  # the organization exists
            return _fail(exc.message)
        except CatalogError as exc:  # read-only or full data directory
            return _fail(f"cannot write the catalog in {settings.data_dir}: {exc.message}")
        finally:
            catalog.close()
    finally:
        backend.close()
    print(json.dumps({"id": user.id, "email": user.email, "api_key": user.api_key}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cropstack`` command."""
    parser = argparse.ArgumentParser(prog="cropstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="Run the HTTP service.")
    serve.add_argument("--host", default="127.0.0.1", help="Address to bind (127.0.0.1).")
    serve.add_argument("--port", type=int, default=8000, help="Port to bind (8000).")
    serve.add_argument(
        "--data-dir",
        default=os.environ.get("CROPSTACK_DATA_DIR", "./cropstack-data"),
        help="Catalog and blob directory (./cropstack-data).",
    )
    serve.add_argument("--workers", type=int, default=1, help="Worker processes, >= 1 (1).")
    serve.add_argument(
        "--threads", type=int, default=16, help="Request threads per worker, >= 1 (16)."
    )
    serve.add_argument(
        "--timeout", type=int, default=60, help="Seconds before a stuck worker is killed (60)."
    )
    serve.add_argument(
        "--max-requests",
        type=int,
        default=10_000,
        help="Requests before a worker is recycled; 0 = never (10000).",
    )
    signup = serve.add_mutually_exclusive_group()
    signup.add_argument(
        "--signup",
        dest="signup",
        action="store_true",
        default=None,
        help="Allow POST /users without a key (off unless CROPSTACK_SIGNUP=true).",
    )
    signup.add_argument(
        "--no-signup", dest="signup", action="store_false", help="Refuse POST /users (default)."
    )
    serve.add_argument("--render-domain", default=None, help="Serve {org}.DOMAIN render hosts.")
    serve.add_argument("--access-log", action="store_true", help="Log requests to stdout.")
    serve.set_defaults(func=_serve)
    doc = sub.add_parser("settings-doc", help="Print docs/settings.md, generated from SETTINGS.")
    doc.set_defaults(func=_settings_doc)
    gc = sub.add_parser("gc", help="Purge images past the restore window and unreferenced blobs.")
    gc.add_argument(
        "--data-dir",
        default=os.environ.get("CROPSTACK_DATA_DIR", "./cropstack-data"),
        help="Catalog and blob directory (./cropstack-data).",
    )
    gc.add_argument(
        "--grace", type=float, default=None, help="Keep unreferenced blobs younger than this (s)."
    )
    gc.set_defaults(func=_gc)
    users = sub.add_parser("users", help="Manage accounts from the command line.")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser(
        "create",
        help="Create a user, its API key and a new organization it administers; "
        'prints {"id", "email", "api_key"} as JSON.',
    )
    # Checked by _users_create, not argparse, so a missing flag is a one-line message too.
    create.add_argument("--email", default=None, help="The user's email (required).")
    create.add_argument(
        "--organization", default=None, help="A new organization's name (required)."
    )
    create.add_argument(
        "--data-dir",
        default=os.environ.get("CROPSTACK_DATA_DIR", "./cropstack-data"),
        help="Catalog and blob directory (./cropstack-data).",
    )
    create.set_defaults(func=_users_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cropstack`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.workers < 1 or args.threads < 1:
            parser.error("--workers and --threads must be at least 1")
        if not 0 <= args.port <= 65535:
            parser.error("--port must be 0..65535")
        if args.timeout < 1 or args.max_requests < 0:
            parser.error("--timeout must be >= 1 and --max-requests >= 0")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
