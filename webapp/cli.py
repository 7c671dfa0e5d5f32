"""The ``cropstack`` command line: ``cropstack serve`` and ``cropstack settings-doc``.

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
    if args.no_signup:
        overrides["signup"] = False
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
            # Create the schema once in the master (SQLite only, no libvips), so workers
            # start on a ready catalog; create_app repeats it idempotently.
            # A read-only data directory with a catalog starts (reads only).
            from webapp.app import prepare_catalog

            prepare_catalog(os.path.join(settings.data_dir, "catalog.db"), settings.busy_timeout_ms)

        def load(self) -> Any:
            from webapp.app import create_app

            return create_app(overrides)

    _Server().run()
    return 0


def _settings_doc(_args: argparse.Namespace) -> int:
    from webapp.settings import settings_markdown

    sys.stdout.write(settings_markdown())
    return 0


def _gc(args: argparse.Namespace) -> int:
    from webapp.catalog import Catalog
    from webapp.gc import collect
    from webapp.settings import load_settings

    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    if args.grace is not None:
        overrides["blob_gc_grace_s"] = args.grace
    settings = load_settings(overrides)
    Catalog.initialise(os.path.join(settings.data_dir, "catalog.db"))
    report = collect(settings)
    print(
        f"purged {report.purged_rows} expired images, removed {report.removed_blobs} blobs "
        f"and {report.removed_tmp} temporary files"
    )
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
    serve.add_argument("--threads", type=int, default=4, help="Threads per worker, >= 1 (4).")
    serve.add_argument(
        "--timeout", type=int, default=60, help="Seconds before a stuck worker is killed (60)."
    )
    serve.add_argument(
        "--max-requests",
        type=int,
        default=10_000,
        help="Requests before a worker is recycled; 0 = never (10000).",
    )
    serve.add_argument("--no-signup", action="store_true", help="Disable POST /users.")
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
