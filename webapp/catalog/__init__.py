"""The catalog: organizations, users, keys, memberships, source images, stacks.

Routes and ingest use a ``Catalog`` (the interface is ``webapp.catalog.interface``):
its groups ``.accounts``, ``.images``, ``.image_search``, ``.stacks``, ``.aliases``,
``.albums`` (and ``.purges``, ``.secrets``, ``.blob_deletions``, which several nodes
share) take and return
typed, frozen records (``webapp.catalog.records``) and raise domain errors
(``webapp.catalog.errors``); ``unit_of_work()`` groups several calls into one
transaction without handing out a connection. SQL lives only in this package.

Backends (``open_backend``): SQLite in the data directory (the default) and PostgreSQL
(``CROPSTACK_DATABASE_URL=postgresql://…``), both created or upgraded at start-up by
versioned migrations (``migrations.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from webapp.catalog.accounts import Accounts
from webapp.catalog.albums import Albums
from webapp.catalog.aliases import Aliases
from webapp.catalog.blobdeletions import BlobDeletions
from webapp.catalog.database import Database
from webapp.catalog.errors import CatalogBusy
from webapp.catalog.images import Images
from webapp.catalog.purges import RenderPurges
from webapp.catalog.remotes import RemoteImages
from webapp.catalog.sharedsecrets import SharedSecrets
from webapp.catalog.stacks import Stacks
from webapp.catalog.tablerows import TableRows
from webapp.catalog.usage import Usage

if TYPE_CHECKING:
    from webapp.catalog.interface import ImageSearch
    from webapp.settings import Settings

__all__ = ["Catalog", "CatalogBackend", "CatalogBusy", "now_iso", "open_backend"]


def now_iso() -> str:
    """The current UTC time as rokka writes it: ``2019-12-10T11:13:24+00:00``."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class Catalog:
    """One handle on the catalog (one database connection at a time, used by one thread).

    Cheap to create; make one per request (``CatalogBackend.open()``) and ``close()`` it.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.accounts = Accounts(db)
        self.images = Images(db)
        self.stacks = Stacks(db)
        self.table_rows = TableRows(db)
        self.remote_images = RemoteImages(db)
        self.aliases = Aliases(db)
        self.albums = Albums(db)
        self.purges = RenderPurges(db)
        self.secrets = SharedSecrets(db)
        self.blob_deletions = BlobDeletions(db)
        self.usage = Usage(db)
        self.image_search: ImageSearch
        if db.dialect == "postgresql":
            from webapp.catalog.pgsearch import PgImageSearch

            self.image_search = PgImageSearch(db)
        else:
            from webapp.catalog.imagesearch import SqliteImageSearch

            self.image_search = SqliteImageSearch(db)

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """Run the catalog calls inside the block as one write transaction: all of them
        commit together or none does. Yields nothing: callers use the groups, never SQL.
        Writers are serialised; ``CatalogBusy`` when the write lock stays taken."""
        with self._db.transaction():
            yield

    def ping(self) -> None:
        """Raise (``CatalogUnavailable`` or the driver's error) unless the database answers."""
        self._db.ping()

    def close(self) -> None:
        """Give the connection back."""
        self._db.close()


class CatalogBackend:
    """Where a process's catalog lives: opens handles, migrates the schema, and is
    closed when the process is done with it (a PostgreSQL pool)."""

    description = ""

    def open(self) -> Catalog:  # pragma: no cover - interface
        """A new handle."""
        raise NotImplementedError

    def migrate(self) -> list[int]:
        """Create or upgrade the schema; the versions applied (empty: up to date)."""
        catalog = self.open()
        try:
            from webapp.catalog.migrations import migrate
            from webapp.catalog.searchindexes import refresh_statistics

            applied = migrate(catalog._db)
            refresh_statistics(catalog._db)
            return applied
        finally:
            catalog.close()

    def close(self) -> None:
        """Release what the backend holds."""


class SqliteBackend(CatalogBackend):
    """The catalog file ``path`` (default: ``catalog.db`` in the data directory)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.description = f"SQLite {self.path}"

    def open(self) -> Catalog:
        """A new handle (its connection opens on first use)."""
        from webapp.catalog.sqlite import SqliteDatabase

        return Catalog(SqliteDatabase(self.path, busy_timeout_ms=self.busy_timeout_ms))


def open_backend(settings: Settings) -> CatalogBackend:
    """The backend ``settings`` select: PostgreSQL for a ``postgresql://`` (or
    ``postgres://``) ``database_url``, else SQLite in the data directory. Opens no
    connection yet; ``PostgresBackend`` checks the URL's form."""
    url = settings.database_url.strip()
    if url:
        from webapp.catalog.postgres import PostgresBackend

        return PostgresBackend(url, busy_timeout_ms=settings.busy_timeout_ms,
                               pool_size=settings.database_pool_size)  # fmt: skip
    return SqliteBackend(
        Path(settings.data_dir) / "catalog.db", busy_timeout_ms=settings.busy_timeout_ms
    )
