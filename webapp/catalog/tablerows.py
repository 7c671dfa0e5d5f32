"""Whole rows of the catalog's tables, exactly as stored: what ``cropstack migrate``
(webapp/transfer.py) reads from one catalog and writes into another.

Copying through the domain calls (``Images.insert``, ``Accounts.signup``) would not give
the same catalog: they make new ids, new creation times and new short hashes (a short hash
depends on which images existed when the row was made), and API keys are stored only as
hashes. So the copy moves rows column by column, on the same ``Database`` both backends
implement, inside the catalog's own transactions; the search index rows and facet counts
are not copied but rebuilt by the target itself as each image row is written (SQLite's
triggers, PostgreSQL's ``index_image`` and facet trigger), so both follow the target's
rules. ``schema_migrations`` is not copied: each catalog records its own migrations (the
target's migration 4, where usage counting starts, is backdated to the source's).

A row is a tuple of the table's ``COPIED`` columns in their order; a key is the tuple of
its primary key columns. Values are what the drivers give (text, int, None): both
backends store the same types (pgschema.py), so a row read from one compares equal to
the same row read from the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from webapp.catalog.database import Database

Row = tuple[Any, ...]
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A copied table: its name, primary key columns and every column copied."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    #: Rows are read in insertion order (``created``, then the backend's ``seq``) where
    #: listings depend on it (API keys, memberships); else in key order, in pages.
    insertion_ordered: bool = False
    #: Also written by the catalog's own triggers on ``sourceimages`` (usage_storage):
    #: copied after the images and after rows the source lacks are removed, so that what
    #: the triggers wrote meanwhile is replaced by the source's rows.
    kept_by_triggers: bool = False

    def key_of(self, row: Row) -> Key:
        """The primary key of ``row``."""
        return tuple(row[self.columns.index(column)] for column in self.key)


#: The copied tables, parents before children (foreign keys hold at every commit).
COPIED: tuple[Table, ...] = (
    Table(
        "organizations",
        ("id",),
        ("id", "name", "display_name", "billing_email", "master_organization", "options",
         "signing_keys", "created"),
    ),  # fmt: skip
    Table("users", ("id",), ("id", "email", "created")),
    Table(
        "api_keys",
        ("id",),
        ("id", "user_id", "key_hash", "comment", "created"),
        insertion_ordered=True,
    ),
    Table(
        "memberships",
        ("organization_id", "user_id"),
        ("organization_id", "user_id", "roles", "active", "comment", "created", "last_access"),
        insertion_ordered=True,
    ),
    Table(
        "stacks",
        ("organization_id", "name"),
        ("organization_id", "name", "definition", "created"),
    ),
    Table(
        "sourceimage_aliases",
        ("organization_id", "name"),
        ("organization_id", "name", "hash", "created"),
    ),
    Table(
        "usage_deliveries",
        ("organization_id", "day"),
        ("organization_id", "day", "renders", "cache_hits", "bytes"),
    ),
    Table(
        "sourceimages",
        ("organization_id", "hash"),
        ("organization_id", "hash", "short_hash", "binary_hash", "blob_key", "name", "format",
         "mimetype", "size", "width", "height", "user_metadata", "dynamic_metadata",
         "static_metadata", "opaque", "animated", "protected", "locked", "created",
         "deleted_at"),
    ),  # fmt: skip
    Table(
        "remote_images",
        ("organization_id", "url_key"),
        ("organization_id", "url_key", "url", "hash", "fetched", "expires"),
    ),
    Table(
        "usage_storage",
        ("organization_id", "day"),
        ("organization_id", "day", "bytes", "files"),
        kept_by_triggers=True,
    ),
)
#: Tables each catalog derives from ``sourceimages`` by itself (compared by count only).
DERIVED: tuple[str, ...] = ("sourceimage_values", "sourceimage_facet_counts")
#: Tables neither copied nor compared: each catalog's own migration record; the word
#: indexes, which each backend derives in its own shape (SQLite: an FTS5 table, its shadow
#: tables and the image keys behind it; PostgreSQL: sourceimage_words and its scopes,
#: wordindex.py), so a count on one side has no twin on the other; and the
#: multi-node tables, which describe the running service, not its data: purge generations
#: (the target's nodes start with empty render caches), gc's in-flight delete marks, and
#: the shared token secret (tokens last a day; the target makes its own).
NOT_COPIED: tuple[str, ...] = (
    "schema_migrations",
    "sourceimage_keys",
    "sourceimage_words",
    "render_generations",
    "blob_deletions",
    "service_secrets",
    "sourceimage_word_scopes",
)
TABLES: dict[str, Table] = {table.name: table for table in COPIED}


def _key_match(table: Table, count: int) -> str:
    """SQL matching ``count`` keys of ``table`` (row values, understood by both backends)."""
    if len(table.key) == 1:
        return f"{table.key[0]} IN ({', '.join('?' * count)})"
    one = "(" + ", ".join("?" * len(table.key)) + ")"
    return f"({', '.join(table.key)}) IN (VALUES {', '.join([one] * count)})"


class TableRows:
    """Rows of the ``COPIED`` tables of one catalog (``webapp.catalog.interface.TableRows``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def count(self, table: str) -> int:
        """The number of rows of ``table`` (a ``COPIED`` or ``DERIVED`` name)."""
        if table not in TABLES and table not in DERIVED:
            raise ValueError(f"not a catalog table: {table}")
        found = self.db.row(f"SELECT COUNT(*) AS n FROM {table}")
        return int(found["n"]) if found else 0

    def latest(self, table: str) -> str | None:
        """The latest ``created`` of ``table`` (ISO 8601 text), None when it is empty or
        has no ``created`` column."""
        spec = TABLES[table]
        if "created" not in spec.columns:
            return None
        found = self.db.row(f"SELECT MAX(created) AS latest FROM {spec.name}")
        return found["latest"] if found else None

    def migration_applied(self, version: int) -> str | None:
        """When schema migration ``version`` was applied (ISO 8601), None if it was not."""
        found = self.db.row(
            "SELECT applied FROM schema_migrations WHERE version = ?", (version,)
        )
        return None if found is None else str(found["applied"])

    def backdate_migration(self, version: int, applied: str) -> None:
        """Record migration ``version`` as applied at ``applied`` when that is earlier than
        what is recorded: the usage figures start at migration 4 (``Usage.counting_since``),
        and a copied catalog keeps the history of the one it was copied from."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE schema_migrations SET applied = ? WHERE version = ? AND applied > ?",
                (applied, version, applied),
            )

    def rows(self, table: str, *, after: Key | None = None, limit: int | None = None) -> list[Row]:
        """Rows of ``table``: all of them in insertion order for ``insertion_ordered``
        tables (``after``/``limit`` not allowed), else in key order, the first ``limit``
        after the key ``after`` (keyset paging: each page is one short query)."""
        spec = TABLES[table]
        columns = ", ".join(spec.columns)
        if spec.insertion_ordered:
            if after is not None or limit is not None:
                raise ValueError(f"{table} is read whole")
            order = f"created, {self.db.seq}"
            found = self.db.rows(f"SELECT {columns} FROM {table} ORDER BY {order}")
            return [tuple(row[c] for c in spec.columns) for row in found]
        key = ", ".join(spec.key)
        sql = f"SELECT {columns} FROM {table}"
        params: list[Any] = []
        if after is not None:
            sql += f" WHERE ({key}) > ({', '.join('?' * len(spec.key))})"
            params += after
        sql += f" ORDER BY {key}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [tuple(row[c] for c in spec.columns) for row in self.db.rows(sql, params)]

    def pages(self, table: str, page_rows: int = 500) -> Iterator[list[Row]]:
        """Every row of ``table`` in pages of at most ``page_rows`` (one list per page)."""
        if TABLES[table].insertion_ordered:
            yield self.rows(table)
            return
        after: Key | None = None
        while True:
            page = self.rows(table, after=after, limit=page_rows)
            if not page:
                return
            yield page
            after = TABLES[table].key_of(page[-1])

    def lookup(self, table: str, keys: Sequence[Key]) -> dict[Key, Row]:
        """The rows of ``table`` with these keys (those that exist), by key."""
        spec = TABLES[table]
        found: dict[Key, Row] = {}
        for start in range(0, len(keys), 200):  # bounded statement size
            chunk = keys[start : start + 200]
            match = _key_match(spec, len(chunk))
            sql = f"SELECT {', '.join(spec.columns)} FROM {table} WHERE {match}"
            params = [value for key in chunk for value in key]
            for row in self.db.rows(sql, params):
                values = tuple(row[c] for c in spec.columns)
                found[spec.key_of(values)] = values
        return found

    def keys(self, table: str) -> Iterator[Key]:
        """Every key of ``table``, in pages (no whole rows)."""
        spec = TABLES[table]
        key = ", ".join(spec.key)
        after: Key | None = None
        while True:
            sql = f"SELECT {key} FROM {table}"
            if after is not None:
                sql += f" WHERE ({key}) > ({', '.join('?' * len(spec.key))})"
            rows = self.db.rows(sql + f" ORDER BY {key} LIMIT 1000", list(after or ()))
            if not rows:
                return
            for row in rows:
                yield tuple(row[c] for c in spec.key)
            after = tuple(rows[-1][c] for c in spec.key)

    def write(self, table: str, new: Iterable[Row], changed: Iterable[Row]) -> None:
        """Insert ``new`` rows and overwrite the rows with the keys of ``changed``, in
        the caller's unit of work (or one of its own); image rows are re-indexed for
        search in the same transaction."""
        spec = TABLES[table]
        columns = ", ".join(spec.columns)
        insert = (
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(spec.columns))})"
        )
        others = [c for c in spec.columns if c not in spec.key]
        update = (
            f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in others)} "
            f"WHERE {' AND '.join(f'{c} = ?' for c in spec.key)}"
        )
        with self.db.transaction():
            for row in new:
                self.db.execute(insert, row)
                self._reindex(spec, row)
            for row in changed:
                values = dict(zip(spec.columns, row, strict=True))
                self.db.execute(update, [values[c] for c in others] + list(spec.key_of(row)))
                self._reindex(spec, row)

    def _reindex(self, spec: Table, row: Row) -> None:
        if spec.name == "sourceimages":
            organization_id, image_hash = spec.key_of(row)
            self.db.index_image(organization_id, image_hash)

    def delete(self, table: str, keys: Sequence[Key]) -> int:
        """Remove the rows of ``table`` with these keys (rows that cascade from them go
        too); the number removed."""
        spec = TABLES[table]
        removed = 0
        with self.db.transaction():
            for start in range(0, len(keys), 200):
                chunk = keys[start : start + 200]
                removed += self.db.execute(
                    f"DELETE FROM {table} WHERE {_key_match(spec, len(chunk))}",
                    [value for key in chunk for value in key],
                )
        return removed
