"""The SQLite database behind the catalog: one file in the data directory (the default).

Durability and concurrency (see docs/operations.md): WAL journal, ``synchronous=FULL``,
a busy timeout, every write in ``BEGIN IMMEDIATE`` behind a per-process lock (SQLite's
own write lock serialises processes), one connection per handle, opened lazily after
any fork. A closed handle parks its connection for the next handle of the same thread
(``_Parked``): opening one with its PRAGMAs costs more than a cache hit's whole answer.
A write that cannot get the lock in time raises ``CatalogBusy``; SQLite's "full" and
"read-only" results become ``CatalogFull`` and ``CatalogReadOnly``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webapp.catalog.errors import CatalogBusy, CatalogFull, CatalogReadOnly

log = logging.getLogger(__name__)

# One lock per database file and process: writers of one process queue here instead of
# spinning on SQLITE_BUSY; other processes are serialised by BEGIN IMMEDIATE.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_WARNED_READ_ONLY: set[str] = set()
_SQLITE_READONLY = 8  # SQLite primary result codes
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
#: How much of the catalog file each connection reads through a memory map, bytes
#: (PRAGMA mmap_size). Reading a page then costs a memory access, not a read() into the
#: connection's 2 MiB page cache: a search over 100,000 images touching thousands of
#: rows is 2-5x faster (docs/search.md). The map is address space; the pages in it are
#: the kernel's page cache, shared by every process and reclaimable, not heap.
#: The price (SQLite's own caveat): a disk read error inside the map is a SIGBUS that
#: ends the web worker (gunicorn starts another) instead of an error answer.
MMAP_BYTES = 1 << 30


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _translated(exc: sqlite3.OperationalError) -> Exception:
    """The domain error an SQLite error stands for, else the error itself."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return CatalogBusy()
    if _code(exc) == _SQLITE_FULL:
        return CatalogFull()
    if _code(exc) == _SQLITE_READONLY:
        return CatalogReadOnly()
    return exc


def statements(script: str) -> list[str]:
    """The SQL statements of ``script``, split where SQLite says a statement ends."""
    found: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        found.append(pending.strip())
    return found


def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A configured connection to ``path``; on a read-only directory, a read-only one.

    SQLite cannot read a WAL database whose directory it cannot write, or on a disk too
    full for a new ``-shm`` file, unless told the file cannot change (``immutable``).
    ``SqliteDatabase.transaction`` refuses writes through such a connection.
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
    conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class _Unwritable(sqlite3.Connection):
    """A read-only fallback connection; ``full`` tells why (disk full, else read-only)."""

    full = False

    def refusal(self) -> Exception:
        """The error of a write through this connection."""
        return CatalogFull() if self.full else CatalogReadOnly()


def _readable_as_immutable(path: str, exc: sqlite3.OperationalError) -> bool:
    """Whether a failed open may fall back to an immutable read-only one: the directory
    is not writable, or a full disk cannot hold the ``-shm`` file and no ``-wal`` holds
    changes the main file lacks (so the file alone is the current state)."""
    if not os.path.exists(path):
        return False
    if not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        return True
    if _code(exc) not in (_SQLITE_IOERR, _SQLITE_FULL):
        return False
    try:
        return os.path.getsize(path + "-wal") == 0
    except FileNotFoundError:
        return True


#: Parked connections a forked child inherited from its parent. They are kept referenced
#: and never closed here: closing (or garbage-collecting) one would run sqlite3_close on
#: the parent's file locks and shared memory from another process, which SQLite forbids.
_INHERITED: list[sqlite3.Connection] = []


def _drop(pid: int, conn: sqlite3.Connection) -> None:
    """Close ``conn``, opened by process ``pid``, or keep it untouched if another process
    opened it (a fork)."""
    if pid == os.getpid():
        conn.close()
    else:
        _INHERITED.append(conn)


class _Parked(threading.local):
    """Connections closed handles left for the next handle of the same thread, at most
    ``LIMIT`` (least recently parked closed first), each with the process and the file
    it was opened for: a connection never crosses a fork, and one to a file since
    replaced (a restored backup, a deleted test directory) is closed, not reused."""

    LIMIT = 4

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], tuple[int, int, sqlite3.Connection]] = {}

    def take(self, path: str, busy_timeout_ms: int) -> sqlite3.Connection | None:
        """A parked connection to the file now at ``path``, or None."""
        found = self.idle.pop((path, busy_timeout_ms), None)
        if found is None:
            return None
        pid, inode, conn = found
        try:
            current = os.stat(path).st_ino
        except OSError:
            current = -1
        if pid != os.getpid() or current != inode:
            _drop(pid, conn)
            return None
        return conn

    def give(self, path: str, busy_timeout_ms: int, conn: sqlite3.Connection) -> None:
        """Park ``conn`` (outside any transaction), or close it when it may not be reused."""
        try:
            inode = os.stat(path).st_ino
        except OSError:
            inode = -1
        if inode < 0 or conn.in_transaction or isinstance(conn, _Unwritable):
            # A read-only fallback is opened afresh each time: the directory may be
            # writable again by the next request.
            conn.close()
            return
        old = self.idle.pop((path, busy_timeout_ms), None)
        if old is not None:
            _drop(old[0], old[2])
        self.idle[(path, busy_timeout_ms)] = (os.getpid(), inode, conn)
        while len(self.idle) > self.LIMIT:
            pid, _, oldest = self.idle.pop(next(iter(self.idle)))
            _drop(pid, oldest)


_PARKED = _Parked()


def _write_lock(path: str) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path, threading.Lock())


class SqliteDatabase:
    """One handle's connection to the catalog file at ``path`` (see ``Database``)."""

    dialect = "sqlite"
    #: The column that orders rows of equal ``created`` by insertion.
    seq = "rowid"

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._lock = _write_lock(self.path)
        self._in_write = False

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, opened on first use (so a handle costs nothing until used)."""
        if self._conn is None:
            conn = _PARKED.take(self.path, self.busy_timeout_ms)
            if conn is None:
                conn = _connect(self.path, self.busy_timeout_ms)
                conn.row_factory = sqlite3.Row
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Give the connection back (parked for this thread's next handle), if one was
        opened."""
        if self._conn is not None:
            _PARKED.give(self.path, self.busy_timeout_ms, self._conn)
            self._conn = None

    @staticmethod
    def json_text(column: str, path: Sequence[str]) -> str:
        """SQL for the text at ``path`` (object keys) inside JSON ``column``."""
        return f"json_extract({column}, '$.{'.'.join(path)}')"

    # -- statements -------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        """Every row of a query with bound ``?`` parameters."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc

    def row(self, sql: str, params: Sequence[Any] = ()) -> Mapping[str, Any] | None:
        """The first row of a query, or None."""
        found = self.rows(sql, params)
        return found[0] if found else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement inside ``transaction()``; the number of rows it changed."""
        assert self._in_write, "catalog writes run inside transaction()"
        try:
            return self.conn.execute(sql, params).rowcount
        except sqlite3.OperationalError as exc:
            raise _translated(exc) from exc

    def index_image(self, organization_id: str, image_hash: str) -> None:
        """Nothing: the triggers of schema.py keep the search index in the same write."""

    def has_table(self, name: str) -> bool:
        """Whether the table ``name`` exists."""
        found = self.row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return found is not None

    def ping(self) -> None:
        """Raise unless the database answers a query."""
        self.rows("SELECT 1")

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``), committed on success; nested use
        joins the outer one. ``CatalogBusy`` when the lock cannot be had in time."""
        if self._in_write:
            yield
            return
        conn = self.conn
        if isinstance(conn, _Unwritable):
            raise conn.refusal()
        if not self._lock.acquire(timeout=self.busy_timeout_ms / 1000):
            raise CatalogBusy()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _translated(exc) from exc
            self._in_write = True
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    # SQLITE_FULL and I/O errors roll back by themselves; the original
                    # error must not be masked by ROLLBACK's.
                    self._rollback()
                    raise _translated(exc) from exc
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

    def run_script(self, script: str) -> None:
        """Run every statement of ``script`` inside the current transaction (migrations).

        ``executescript()`` would commit the open transaction; statements run singly
        (``complete_statement`` keeps trigger bodies, which hold ``;``, in one piece).
        """
        for statement in statements(script):
            self.execute(statement)


def open_read_only_check(path: str, busy_timeout_ms: int) -> None:
    """Raise unless the catalog at ``path`` can be read (it has the schema)."""
    db = SqliteDatabase(path, busy_timeout_ms=busy_timeout_ms)
    try:
        db.rows("SELECT 1 FROM sourceimages LIMIT 1")
    finally:
        db.close()
