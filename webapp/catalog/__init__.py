"""The SQLite catalog: organizations, users, keys, memberships, source images, stacks.

Narrow interface: routes call ``Catalog`` methods (grouped as ``.accounts``, ``.images``,
``.image_search``, ``.stacks``) and never write SQL themselves, so another backend can
replace this module.

Durability and concurrency (see docs/operations.md): WAL journal, ``synchronous=FULL``,
a busy timeout, every write in ``BEGIN IMMEDIATE`` behind a per-process lock (SQLite's
own write lock serialises processes), one connection per thread, opened lazily after
any fork. A write that cannot get the lock in time raises ``CatalogBusy`` (503).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from webapp.catalog.schema import SCHEMA
from webapp.errors import INSUFFICIENT_STORAGE, READ_ONLY, ApiError

log = logging.getLogger(__name__)

# One lock per database file and process: writers of one process queue here instead of
# spinning on SQLITE_BUSY; other processes are serialised by BEGIN IMMEDIATE.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_WARNED_READ_ONLY: set[str] = set()
_SQLITE_IOERR = 10  # SQLite primary result codes
_SQLITE_FULL = 13


class CatalogBusy(ApiError):
    """The database stayed locked past the busy timeout."""

    def __init__(self) -> None:
        super().__init__(503, "Catalog is busy, retry shortly", headers={"Retry-After": "1"})


def now_iso() -> str:
    """The current UTC time as rokka writes it: ``2019-12-10T11:13:24+00:00``."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _statements(script: str) -> list[str]:
    """The SQL statements of ``script``, split where SQLite says a statement ends."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A configured connection to ``path``; on a read-only directory, a read-only one.

    SQLite cannot read a WAL database whose directory it cannot write, or on a disk too
    full for a new ``-shm`` file, unless told the file cannot change (``immutable``).
    ``Catalog.write`` refuses writes through such a connection: 503 read-only, 507 full.
    """
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # autocommit; transactions are explicit
        check_same_thread=False,
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        conn.close()
        if not _readable_as_immutable(path, exc):
            raise
        if path not in _WARNED_READ_ONLY:  # once per process, not once per request
            _WARNED_READ_ONLY.add(path)
            log.warning("catalog %s opened read-only (%s); writes are refused", path, exc)
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro&immutable=1"
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, factory=_Unwritable
        )
        conn.full = os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class _Unwritable(sqlite3.Connection):
    """A read-only fallback connection; ``full`` tells why (disk full, else read-only)."""

    full = False

    def refusal(self) -> ApiError:
        """The answer to a write through this connection: 507 or 503."""
        if self.full:
            return ApiError(507, INSUFFICIENT_STORAGE)
        return ApiError(503, READ_ONLY)


def _readable_as_immutable(path: str, exc: sqlite3.OperationalError) -> bool:
    """Whether a failed open may fall back to an immutable read-only one: the directory
    is not writable, or a full disk cannot hold the ``-shm`` file and no ``-wal`` holds
    changes the main file lacks (so the file alone is the current state)."""
    if not os.path.exists(path):
        return False
    if not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        return True
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code not in (_SQLITE_IOERR, _SQLITE_FULL):
        return False
    try:
        return os.path.getsize(path + "-wal") == 0
    except FileNotFoundError:
        return True


def _write_lock(path: str) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path, threading.Lock())


class Catalog:
    """One thread's handle on the catalog database at ``path``.

    Cheap to create; create one per request (or per thread) and ``close()`` it.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        conn = _connect(self.path, busy_timeout_ms)
        conn.row_factory = sqlite3.Row
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._lock = _write_lock(self.path)
        self._in_write = False
        # Domain groups; imported here to keep each in its own module.
        from webapp.catalog.accounts import Accounts
        from webapp.catalog.images import Images
        from webapp.catalog.imagesearch import ImageSearch
        from webapp.catalog.stacks import Stacks

        self.accounts = Accounts(self)
        self.images = Images(self)
        self.image_search = ImageSearch(self)
        self.stacks = Stacks(self)

    @classmethod
    def initialise(cls, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        """Create the schema if needed (idempotent, safe from several processes)."""
        catalog = cls(path, busy_timeout_ms=busy_timeout_ms)
        try:
            with catalog.write():
                # executescript() would commit our BEGIN IMMEDIATE; run statements singly
                # (complete_statement keeps trigger bodies, which hold ";", in one piece).
                for statement in _statements(SCHEMA):
                    catalog.conn.execute(statement)
        finally:
            catalog.close()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success.

        Nested use joins the outer transaction. Raises ``CatalogBusy`` when the lock
        cannot be had within the busy timeout.
        """
        if self._in_write:
            yield self.conn
            return
        if isinstance(self.conn, _Unwritable):
            raise self.conn.refusal()
        if not self._lock.acquire(timeout=self.busy_timeout_ms / 1000):
            raise CatalogBusy()
        try:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise CatalogBusy() from exc
                raise
            self._in_write = True
            try:
                yield self.conn
            except BaseException:
                self._rollback()
                raise
            else:
                try:
                    self.conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    # SQLITE_FULL and I/O errors roll back by themselves; the original
                    # error (507/503 in webapp.errors) must not be masked by ROLLBACK's.
                    self._rollback()
                    if "locked" in str(exc) or "busy" in str(exc):
                        raise CatalogBusy() from exc
                    raise
            finally:
                self._in_write = False
        finally:
            self._lock.release()

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the error being raised says more than this one

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Run a read query with bound parameters; rows as ``sqlite3.Row``."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise CatalogBusy() from exc
            raise

    def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        """The first row of a read query, or None."""
        rows = self.query(sql, params)
        return rows[0] if rows else None
