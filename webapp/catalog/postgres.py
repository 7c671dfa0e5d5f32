"""The PostgreSQL database behind the catalog (``CROPSTACK_DATABASE_URL=postgresql://…``).

psycopg 3 with a ``psycopg_pool.ConnectionPool`` per server process (created after the
fork, checked connections, autocommit; transactions are explicit). A catalog handle
borrows a connection for one statement, or for one write transaction, and gives it back
at once: a request that renders for seconds holds none meanwhile.

Writes: every write transaction first takes one transaction-scoped advisory lock, so
catalog writers are serialised across all nodes exactly as SQLite serialises writers of
one file (``BEGIN IMMEDIATE``); every check-then-write rule therefore sees the state it
writes over. Reads never wait for it. ``lock_timeout`` (``busy_timeout_ms``) bounds the
wait: past it ``CatalogBusy`` (503). A database that cannot be reached is
``CatalogUnavailable``; read-only and full databases are ``CatalogReadOnly`` and
``CatalogFull``, like SQLite's.

The search index (``sourceimage_values``) is written here, by ``index_image``, in the
transaction that writes the image (SQLite does the same with triggers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from webapp.catalog import Catalog, CatalogBackend
from webapp.catalog.errors import (
    CatalogBusy,
    CatalogError,
    CatalogFull,
    CatalogReadOnly,
    CatalogUnavailable,
    Refused,
)

log = logging.getLogger(__name__)

#: The advisory lock every catalog write transaction holds (any constant; "crop").
WRITE_LOCK = 0x63726F70
_SCHEMES = ("postgresql://", "postgres://")


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """Shared ``?`` SQL in psycopg's ``%s`` style (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _translated(exc: psycopg.Error) -> Exception:
    """The domain error a driver error stands for, else the error itself."""
    if isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)):
        return CatalogBusy()
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return CatalogReadOnly()
    if isinstance(exc, psycopg.errors.DiskFull):
        return CatalogFull()
    if isinstance(exc, psycopg.OperationalError):
        return CatalogUnavailable(_one_line(exc))
    return exc


def _one_line(exc: BaseException) -> str:
    """A driver message on one line (libpq's span several)."""
    return " ".join(str(exc).split())


def _has_nul(params: Sequence[Any]) -> bool:
    return any(isinstance(p, str) and "\x00" in p for p in params)


def describe(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable database URL"
    shown = {k: v for k, v in parts.items() if k != "password"}
    return " ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "the default database"


def julian_day(text: str) -> float | None:
    """SQLite's ``julianday()`` of an ISO 8601 date (user ``date:`` values), else None."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return when.timestamp() / 86400 + 2440587.5


def _json_leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, scalar) for every leaf of a JSON document, as SQLite's json_tree
    names them (object keys joined by ``.``, array elements as ``[i]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def index_rows(
    name: str, user: dict[str, Any], dynamic: dict[str, Any], static: dict[str, Any]
) -> list[tuple[str, str, str, str | None, Any]]:
    """The search index rows of one image: (source, field, type, value_text, value_num),
    the same rows SQLite's triggers write (schema.py ``_FLATTEN``)."""
    rows: list[tuple[str, str, str, str | None, Any]] = [("name", "name", "text", name, None)]
    for key, value in user.items():
        kind, _, field = key.partition(":") if ":" in key else ("str", "", key)
        for element in value if isinstance(value, list) else [value]:
            text = element if isinstance(element, str) else None
            number: Any = None
            if isinstance(element, (int, float)) and not isinstance(element, bool):
                number = element
            elif text is not None and kind == "date":
                number = julian_day(text)
            rows.append(("user", field, kind, text, number))
    for source, doc in (("dynamic", dynamic), ("static", static)):
        for path, leaf in _json_leaves(doc, ""):
            if isinstance(leaf, bool):
                rows.append((source, path, "bool", None, int(leaf)))
            elif isinstance(leaf, (int, float)):
                rows.append((source, path, "num", None, leaf))
            elif isinstance(leaf, str):
                rows.append((source, path, "str", leaf, None))
    return rows


class PostgresDatabase:
    """One handle's access to the catalog database through a pool (see ``Database``)."""

    dialect = "postgresql"
    seq = "seq"

    def __init__(self, pool: ConnectionPool, *, busy_timeout_ms: int) -> None:
        self._pool = pool
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._in_write = False

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The transaction's connection, or one borrowed from the pool for one statement
        (so a handle held through a long render pins no connection)."""
        if self._conn is not None:
            yield self._conn
            return
        try:
            conn = self._pool.getconn(timeout=self.busy_timeout_ms / 1000)
        except PoolTimeout as exc:
            raise CatalogUnavailable(f"no database connection in time: {exc}") from exc
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Several reads on one pooled connection (a search runs four or five): one
        pool check-out and its liveness check instead of one per statement. Inside a
        transaction, its connection."""
        if self._conn is not None:
            yield
            return
        with self._connection() as conn:
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The connection of the open write transaction."""
        assert self._conn is not None, "only inside transaction()"
        return self._conn

    def close(self) -> None:
        """Nothing to give back: connections return to the pool after each statement
        or transaction."""

    @staticmethod
    def json_text(column: str, path: Sequence[str]) -> str:
        """SQL for the text at ``path`` inside the JSON text ``column``."""
        return f"(({column})::jsonb #>> '{{{','.join(path)}}}')"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        """Every row of a query with bound ``?`` parameters, as dicts.

        PostgreSQL text cannot hold NUL characters, so no stored value equals a text
        holding one: such a lookup (a hostile name in a URL) finds nothing, as on SQLite.
        """
        if _has_nul(params):
            return []
        try:
            with self._connection() as conn:
                return conn.execute(_pg_sql(sql), params).fetchall()
        except psycopg.Error as exc:
            raise _translated(exc) from exc

    def row(self, sql: str, params: Sequence[Any] = ()) -> Mapping[str, Any] | None:
        """The first row of a query, or None."""
        found = self.rows(sql, params)
        return found[0] if found else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement inside ``transaction()``; the number of rows it changed."""
        assert self._in_write, "catalog writes run inside transaction()"
        if _has_nul(params):
            raise Refused("text values cannot contain NUL characters")
        try:
            return self.conn.execute(_pg_sql(sql), params).rowcount
        except psycopg.Error as exc:
            raise _translated(exc) from exc

    def has_table(self, name: str) -> bool:
        """Whether the table ``name`` exists (in the search path)."""
        found = self.row("SELECT to_regclass(?) IS NOT NULL AS found", (name,))
        return bool(found and found["found"])

    def ping(self) -> None:
        """Raise unless the database answers a query."""
        self.rows("SELECT 1")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the catalog write lock; nested use joins it."""
        if self._in_write:
            yield
            return
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {int(self.busy_timeout_ms)}")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                self._conn, self._in_write = conn, True
                try:
                    yield
                finally:
                    self._conn, self._in_write = None, False
        except psycopg.Error as exc:
            raise _translated(exc) from exc

    def run_script(self, script: str) -> None:
        """Run a multi-statement script (a migration) inside ``transaction()``."""
        assert self._in_write
        try:
            self.conn.execute(script.encode())  # bytes: no placeholders are parsed
        except psycopg.Error as exc:
            raise _translated(exc) from exc

    def index_image(self, organization_id: str, image_hash: str) -> None:
        """Rebuild one image's search index rows (inside the writing transaction)."""
        found = self.row(
            "SELECT name, user_metadata, dynamic_metadata, static_metadata FROM sourceimages "
            "WHERE organization_id = ? AND hash = ?",
            (organization_id, image_hash),
        )
        self.execute(
            "DELETE FROM sourceimage_values WHERE organization_id = ? AND hash = ?",
            (organization_id, image_hash),
        )
        if found is None:
            return
        rows = index_rows(
            found["name"],
            json.loads(found["user_metadata"]),
            json.loads(found["dynamic_metadata"]),
            json.loads(found["static_metadata"]),
        )
        try:
            with self.conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO sourceimage_values (organization_id, hash, source, field, "
                    "type, value_text, value_num) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [(organization_id, image_hash, *r) for r in rows],
                )
        except psycopg.Error as exc:
            raise _translated(exc) from exc


class PostgresBackend(CatalogBackend):
    """A PostgreSQL catalog at ``url``; the pool opens on first use (after any fork)."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 8) -> None:
        if not url.startswith(_SCHEMES):
            raise ValueError("database_url must start with postgresql:// (or be empty)")
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self.pool_size = max(1, pool_size)
        self.description = f"PostgreSQL {describe(url)}"
        self._pool: ConnectionPool | None = None

    def _connected_pool(self) -> ConnectionPool:
        if self._pool is None:
            try:  # one direct connection first: its error says why, the pool's would not
                psycopg.connect(self.url, connect_timeout=5).close()
            except psycopg.Error as exc:
                raise CatalogUnavailable(f"{self.description}: {_one_line(exc)}") from exc
            pool = ConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5},
                check=ConnectionPool.check_connection,
                open=False,
                name="cropstack-catalog",
            )
            try:
                pool.open(wait=True, timeout=10)
            except PoolTimeout as exc:
                pool.close()
                raise CatalogUnavailable(f"{self.description}: {exc}") from exc
            self._pool = pool
        return self._pool

    def open(self) -> Catalog:
        """A new handle (it borrows a connection on first use)."""
        database = PostgresDatabase(self._connected_pool(), busy_timeout_ms=self.busy_timeout_ms)
        return Catalog(database)

    def close(self) -> None:
        """Close the pool and its connections."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


__all__ = ["CatalogError", "PostgresBackend", "PostgresDatabase", "index_rows"]
