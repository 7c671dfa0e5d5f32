"""The ``cropstack`` command line: serve, import, users, keys, orgs, gc, backup, restore,
migrate and settings-doc.

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
    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    if args.signup is not None:
        overrides["signup"] = args.signup
    if args.render_domain is not None:
        overrides["render_domain"] = args.render_domain
    if args.access_log is not None:
        overrides["access_log"] = args.access_log

    from webapp.settings import load_settings

    try:
        settings = load_settings(overrides)  # fail fast on bad settings, in the master
    except ValueError as exc:
        print(f"cropstack: {exc}", file=sys.stderr)
        return 2
    from webapp.allocator import tune

    # In the master, before gunicorn forks its workers: a forked worker never reads
    # MALLOC_ARENA_MAX from the environment (webapp/allocator.py).
    tune(settings.malloc_arena_max, settings.malloc_mmap_threshold_kb)
    from webapp.datadir import NotADataDir, require_data_dir

    try:
        require_data_dir(
            settings.data_dir, init=args.init, catalog_elsewhere=bool(settings.database_url)
        )
    except NotADataDir as exc:
        return _fail(str(exc))
    # Before anything imports prometheus_client: the workers (forked from here) count
    # into files in this private directory, and /metrics sums them (webapp/metrics.py).
    from webapp.startup import prepare_metrics_dir, startup_line

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prepare_metrics_dir(settings.data_dir))

    print(
        startup_line(
            settings, bind=f"{args.host}:{args.port}", workers=args.workers, threads=args.threads
        ),
        file=sys.stderr,
        flush=True,
    )
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
                # Requests are logged by the app (webapp/accesslog.py), as JSON.
                "accesslog": None,
                "child_exit": _child_exit,
                "worker_exit": _worker_exit,
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

    try:
        _Server().run()
    finally:
        from webapp import keptdecodes

        keptdecodes.remove(settings)  # kept decodes are a cache of this server's run
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


def _child_exit(_server: Any, worker: Any) -> None:
    from webapp.metrics import worker_exited

    worker_exited(worker.pid)


def _worker_exit(_server: Any, worker: Any) -> None:
    """In a stopping worker: write its last render counts (GET /stats) to the catalog."""
    from webapp.usagecounter import counter_of

    app = getattr(worker, "wsgi", None)
    counter = counter_of(app) if app is not None and hasattr(app, "extensions") else None
    if counter is not None:
        counter.close()


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
    from webapp.datadir import NotADataDir, require_data_dir

    try:
        settings = load_settings(overrides)
        require_data_dir(settings.data_dir, catalog_elsewhere=bool(settings.database_url))
    except (ValueError, NotADataDir) as exc:
        return _fail(str(exc))
    backend = open_backend(settings)  # schema upgrades
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
        f"purged {report.purged_rows} expired images and {report.removed_previews} old "
        f"_preview stacks, removed {report.removed_blobs} blobs "
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


def _open_catalog(args: argparse.Namespace) -> tuple[Any, Any]:
    """(settings, catalog) of an existing data directory; ``CommandError`` otherwise."""
    from webapp.app import prepare_catalog
    from webapp.catalog import open_backend
    from webapp.catalog.errors import CatalogUnavailable
    from webapp.datadir import NotADataDir, require_data_dir
    from webapp.settings import load_settings

    try:
        settings = load_settings({"data_dir": args.data_dir})
        require_data_dir(settings.data_dir, catalog_elsewhere=bool(settings.database_url))
    except (ValueError, NotADataDir) as exc:
        raise CommandError(str(exc)) from exc
    backend = open_backend(settings)
    try:
        prepare_catalog(backend)  # schema upgrades
        return settings, _ClosingCatalog(backend)
    except CatalogUnavailable as exc:
        backend.close()
        raise CommandError(f"cannot reach the catalog database: {exc.detail}") from exc


class _ClosingCatalog:
    """A catalog handle that also closes its backend (a PostgreSQL pool) when closed."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._handle = backend.open()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def close(self) -> None:
        self._handle.close()
        self._backend.close()


class CommandError(Exception):
    """A one-line refusal for the operator (exit status 2)."""


def _import(args: argparse.Namespace) -> int:
    """Upload every file under DIR into the organization; a summary on stdout; exit 1 when
    some files failed (listed on stderr), 0 otherwise."""
    from pathlib import Path

    from webapp.blobs import open_store
    from webapp.importer import Progress, files_under, import_tree

    root = Path(args.directory)
    if not root.is_dir():
        return _fail(f"{os.path.abspath(root)} is not a directory")
    if args.organization is None:
        return _fail("import needs --organization")
    try:
        settings, catalog = _open_catalog(args)
    except CommandError as exc:
        return _fail(str(exc))
    try:
        org = catalog.accounts.org_by_name(args.organization)
        if org is None:
            return _fail(f"organization {args.organization} does not exist (see orgs list)")
        total = sum(1 for _ in files_under(root))
        progress = Progress(total)
        try:
            report = import_tree(
                root, org["id"], catalog, open_store(settings.blob_store, settings.data_dir),
                settings, progress=progress,
            )
        finally:
            progress.close()
    finally:
        catalog.close()
    for path, reason in report.failed:
        print(f"cropstack: {path}: {reason}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failed else 0


def _keys_create(args: argparse.Namespace) -> int:
    """A new API key for a user (by id, or by an email only one user has); prints
    ``{"id", "api_key", "comment", "created"}`` as JSON."""
    import json

    if args.user is None:
        return _fail("keys create needs --user (a user id or email)")
    try:
        _settings, catalog = _open_catalog(args)
    except CommandError as exc:
        return _fail(str(exc))
    try:
        ids = catalog.accounts.user_ids(args.user)
        if not ids:
            return _fail(f"no user {args.user}")
        if len(ids) > 1:
            return _fail(f"{len(ids)} users have the email {args.user}; pass a user id: "
                         + ", ".join(ids))  # fmt: skip
        from webapp.catalog.errors import Conflict

        try:
            key = catalog.accounts.add_key(ids[0], args.comment)
        except Conflict as exc:  # past the key limit
            return _fail(exc.message)
    finally:
        catalog.close()
    print(json.dumps(key.as_dict()))
    return 0


def _orgs_list(args: argparse.Namespace) -> int:
    """One JSON line per organization: name, display_name, created, members, images."""
    import json

    try:
        _settings, catalog = _open_catalog(args)
    except CommandError as exc:
        return _fail(str(exc))
    try:
        summaries = catalog.accounts.organization_summaries()
    finally:
        catalog.close()
    for summary in summaries:
        print(json.dumps(summary.as_dict()))
    return 0


def _backup(args: argparse.Namespace) -> int:
    """Back up the data directory into an empty directory while the server may run."""
    from pathlib import Path

    from webapp.backup import BackupError, backup
    from webapp.blobs import StorageFull, StoreUnavailable, open_store
    from webapp.datadir import NotADataDir, require_data_dir
    from webapp.settings import load_settings

    try:
        settings = load_settings({"data_dir": args.data_dir})
        if settings.database_url:
            return _fail(
                "the catalog is in PostgreSQL (database_url): back it up with pg_dump or "
                "your provider's point-in-time recovery; backup copies SQLite data directories"
            )
        require_data_dir(settings.data_dir)
        store = open_store(settings.blob_store, settings.data_dir)
        report = backup(Path(settings.data_dir), store, Path(args.target))
    except (ValueError, NotADataDir, BackupError, StoreUnavailable, StorageFull) as exc:
        return _fail(str(exc))
    return _copy_outcome(report)


def _restore(args: argparse.Namespace) -> int:
    """Check a backup and copy it into a data directory that holds no catalog yet."""
    from pathlib import Path

    from webapp.backup import BackupError, restore
    from webapp.blobs import StorageFull, StoreUnavailable, open_store
    from webapp.settings import load_settings

    try:
        settings = load_settings({"data_dir": args.data_dir})
        report = restore(
            Path(args.backup),
            Path(settings.data_dir),
            lambda data_dir: open_store(settings.blob_store, data_dir),
        )
    except (ValueError, BackupError, StoreUnavailable, StorageFull) as exc:
        return _fail(str(exc))
    return _copy_outcome(report)


def _migrate(args: argparse.Namespace) -> int:
    """Copy the data directory's catalog and originals to PostgreSQL and a blob store
    (webapp/transfer.py); exit 0 once verified."""
    from webapp.transfer import migrate_command

    if args.to_database_url is None or args.to_blob_store is None:
        return _fail("migrate needs --to-database-url and --to-blob-store")
    if args.jobs < 1 or args.jobs > 64:
        return _fail("--jobs must be 1..64")
    try:
        settings, catalog = _open_catalog(args)
    except CommandError as exc:
        return _fail(str(exc))
    try:
        return migrate_command(settings, catalog, args.to_database_url, args.to_blob_store,
                               jobs=args.jobs)  # fmt: skip
    finally:
        catalog.close()


def _copy_outcome(report: Any) -> int:
    for name in report.missing:
        print(f"cropstack: blob {name} is referenced but missing", file=sys.stderr)
    for name in report.damaged:
        print(f"cropstack: blob {name} is damaged (its bytes do not match its name)",
              file=sys.stderr)  # fmt: skip
    print(report.summary())
    return 1 if report.missing or report.damaged else 0


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("CROPSTACK_DATA_DIR", "./cropstack-data"),
        help="Catalog and blob directory (./cropstack-data, or CROPSTACK_DATA_DIR).",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cropstack`` command."""
    parser = argparse.ArgumentParser(
        prog="cropstack",
        description="cropstack: a self-hosted image service that speaks the rokka API.",
        epilog="Run 'cropstack COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    serve.add_argument(
        "--init",
        action="store_true",
        help="Create the data directory and its catalog if the path holds none "
        "(else such a path is refused: a mistyped --data-dir must not serve an empty catalog).",
    )
    access = serve.add_mutually_exclusive_group()
    access.add_argument(
        "--access-log",
        dest="access_log",
        action="store_true",
        default=None,
        help="Log each request as a JSON line on stderr (default; CROPSTACK_ACCESS_LOG).",
    )
    access.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="Do not log requests."
    )
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
    users = sub.add_parser(
        "users", help="users create: a user, its API key and a new organization."
    )
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
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

    importer = sub.add_parser(
        "import",
        help="Upload every file under a directory into an organization (resumable).",
        description="Upload every file under DIRECTORY (recursively; hidden files left out) "
        "into an organization. Files whose bytes the organization already holds are "
        "skipped, so an interrupted import can be run again.",
    )
    importer.add_argument("directory", metavar="DIRECTORY", help="The folder to import.")
    importer.add_argument("--organization", default=None, help="Target organization (required).")
    _add_data_dir(importer)
    importer.set_defaults(func=_import)

    keys = sub.add_parser("keys", help="keys create: a new API key for a user.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    key_create = keys_sub.add_parser(
        "create",
        help='Create an API key for a user; prints {"id", "api_key", "comment", "created"}.',
    )
    key_create.add_argument("--user", default=None, help="User id, or an email (required).")
    key_create.add_argument("--comment", default=None, help="A note shown in key listings.")
    _add_data_dir(key_create)
    key_create.set_defaults(func=_keys_create)

    orgs = sub.add_parser("orgs", help="orgs list: every organization.")
    orgs_sub = orgs.add_subparsers(dest="orgs_command", required=True, metavar="COMMAND")
    orgs_list = orgs_sub.add_parser(
        "list", help="One JSON line per organization (name, members, images)."
    )
    _add_data_dir(orgs_list)
    orgs_list.set_defaults(func=_orgs_list)

    saving = sub.add_parser(
        "backup",
        help="Copy the catalog and blobs into an empty directory, while serving.",
        description="Copy the data directory's catalog (SQLite online backup) and then its "
        "blobs (each verified by its hash) into TARGET, an empty or new directory. Safe "
        "while the server runs. The backup is itself a data directory.",
    )
    saving.add_argument("target", metavar="TARGET", help="An empty or new directory.")
    _add_data_dir(saving)
    saving.set_defaults(func=_backup)

    restoring = sub.add_parser(
        "restore",
        help="Check a backup and copy it into an empty data directory.",
        description="Check BACKUP (catalog integrity, every referenced blob present and "
        "intact) and copy it into --data-dir, which must be empty or new.",
    )
    restoring.add_argument("backup", metavar="BACKUP", help="A directory made by backup.")
    _add_data_dir(restoring)
    restoring.set_defaults(func=_restore)

    moving = sub.add_parser(
        "migrate",
        help="Copy the catalog and originals to PostgreSQL and S3 (resumable, verified).",
        description="Copy this data directory's catalog and originals into a PostgreSQL "
        "database and a blob store, then verify the copy (row counts and digests per table, "
        "SHA-256 of every original). Run it again after an interruption: it goes on where "
        "it stopped. Exit 0 only when verified.",
    )
    # Checked by _migrate, not argparse, so a missing flag is a one-line message too.
    moving.add_argument("--to-database-url", default=None, metavar="URL",
                        help="postgresql://user:password@host:5432/database (required)")
    moving.add_argument("--to-blob-store", default=None, metavar="URL",
                        help="s3://bucket/prefix (AWS_* variables), or a directory (required)")
    moving.add_argument("--jobs", type=int, default=4,
                        help="Originals copied or verified at once, 1..64 (4).")  # fmt: skip
    _add_data_dir(moving)
    moving.set_defaults(func=_migrate)
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
