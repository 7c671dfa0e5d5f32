"""Versioned schema migrations, one list per database dialect.

``schema_migrations`` records each applied version. At start-up (``migrate``) the server
applies, in one write transaction, every version the database lacks, so several nodes
starting at once apply each version once (SQLite's write lock, PostgreSQL's catalog write
lock serialise them). A migration is never edited once released: changes are new
versions appended to the list.

SQLite's version 1 is the schema script of the releases before this table existed; it
is idempotent and upgrades those catalogs in place (schema.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from webapp.catalog.aliasschema import PG_ALIASES, SQLITE_ALIASES
from webapp.catalog.database import Database
from webapp.catalog.nodeschema import NODES_SCHEMA
from webapp.catalog.pgschema import PG_SCHEMA
from webapp.catalog.probeindexes import PG_PROBE_INDEXES
from webapp.catalog.remoteschema import REMOTE_SCHEMA_POSTGRESQL, REMOTE_SCHEMA_SQLITE
from webapp.catalog.schema import SCHEMA
from webapp.catalog.searchindexes import PG_SEARCH_INDEXES, SQLITE_SEARCH_INDEXES
from webapp.catalog.usageschema import PG_USAGE, SQLITE_USAGE
from webapp.catalog.wordindex import PG_WORD_INDEX


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, a short name and the SQL script."""

    version: int
    name: str
    script: str


MIGRATIONS: dict[str, tuple[Migration, ...]] = {
    "sqlite": (
        Migration(1, "catalog, search index, facet counts", SCHEMA),
        Migration(2, "remote images", REMOTE_SCHEMA_SQLITE),
        Migration(3, "source image aliases", SQLITE_ALIASES),
        Migration(4, "usage: deliveries and storage per day", SQLITE_USAGE),
        Migration(6, "purge generations, blob deletions, shared secrets", NODES_SCHEMA),
        Migration(7, "covering indexes for search", SQLITE_SEARCH_INDEXES),
    ),
    "postgresql": (
        Migration(1, "catalog, search index, text search", PG_SCHEMA),
        Migration(2, "remote images", REMOTE_SCHEMA_POSTGRESQL),
        Migration(3, "source image aliases", PG_ALIASES),
        Migration(4, "usage: deliveries and storage per day", PG_USAGE),
        Migration(5, "word index of live images", PG_WORD_INDEX),
        Migration(6, "purge generations, blob deletions, shared secrets", NODES_SCHEMA),
        Migration(7, "covering indexes for search", PG_SEARCH_INDEXES),
        Migration(8, "search probe indexes keyed by hash", PG_PROBE_INDEXES),
    ),
}

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)"
)


def applied_versions(db: Database) -> set[int]:
    """The versions recorded in ``schema_migrations`` (empty before the first)."""
    if not db.has_table("schema_migrations"):
        return set()
    return {int(r["version"]) for r in db.rows("SELECT version FROM schema_migrations")}


def pending(db: Database) -> list[Migration]:
    """The migrations the database lacks, in order."""
    done = applied_versions(db)
    return [m for m in MIGRATIONS[db.dialect] if m.version not in done]


def migrate(db: Database) -> list[int]:
    """Apply every pending migration in one write transaction; the versions applied.

    Reads first, so a catalog that is up to date is not written at all (a read-only
    SQLite catalog then starts without a write).
    """
    from webapp.catalog import now_iso

    if not pending(db):
        return []
    applied: list[int] = []
    with db.transaction():
        db.execute(_TABLE)
        for migration in pending(db):  # again, under the write lock
            db.run_script(migration.script)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                (migration.version, migration.name, now_iso()),
            )
            applied.append(migration.version)
    return applied
