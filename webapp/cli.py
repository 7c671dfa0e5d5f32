"""The ``cropstack`` command line: ``cropstack serve``.

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

    settings = load_settings(overrides)  # fail fast on bad settings, in the master
    os.makedirs(settings.data_dir, exist_ok=True)

    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", args.threads)
            self.cfg.set("preload_app", False)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", "-" if args.access_log else None)
            # The catalog is initialised here, in the master, with SQLite only.
            from webapp.catalog import Catalog

            Catalog.initialise(os.path.join(settings.data_dir, "catalog.db"))

        def load(self) -> Any:
            from webapp.app import create_app

            return create_app(overrides)

    _Server().run()
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
    serve.add_argument("--workers", type=int, default=1, help="Worker processes (1).")
    serve.add_argument("--threads", type=int, default=4, help="Threads per worker (4).")
    serve.add_argument("--no-signup", action="store_true", help="Disable POST /users.")
    serve.add_argument("--render-domain", default=None, help="Serve {org}.DOMAIN render hosts.")
    serve.add_argument("--access-log", action="store_true", help="Log requests to stdout.")
    serve.set_defaults(func=_serve)
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
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
