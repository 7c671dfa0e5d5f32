"""What the catalog's query modules need from a database: ``Database``.

Two implementations: ``webapp.catalog.sqlite.SqliteDatabase`` (the default, a file in
the data directory) and ``webapp.catalog.postgres.PostgresDatabase``. Queries are written
once with ``?`` placeholders in the SQL both understand; the few differences are
attributes (``seq``) and helpers (``json_text``). Only ``webapp.catalog`` sees this
interface: routes and ingest get a ``Catalog`` and its unit of work, never SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Database(Protocol):
    """One handle's access to the catalog database (one connection at a time)."""

    #: ``sqlite`` or ``postgresql``: selects migrations and search.
    dialect: str
    #: A column ordering rows of equal ``created`` by insertion (``rowid``, ``seq``).
    seq: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        """Every row of a query with bound ``?`` parameters."""
        ...

    def row(self, sql: str, params: Sequence[Any] = ()) -> Mapping[str, Any] | None:
        """The first row of a query, or None."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement inside ``transaction()``; the number of rows it changed."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction, committed on success, rolled back on error; nested use
        joins the outer one. Writers are serialised (``CatalogBusy`` past the timeout)."""
        ...

    def run_script(self, script: str) -> None:
        """Run a multi-statement script (a migration) inside ``transaction()``."""
        ...

    def has_table(self, name: str) -> bool:
        """Whether the table ``name`` exists."""
        ...

    def index_image(self, organization_id: str, image_hash: str) -> None:
        """Rebuild one image's search index rows inside the writing transaction (SQLite's
        triggers do it by themselves: there it does nothing)."""
        ...

    def json_text(self, column: str, path: Sequence[str]) -> str:
        """SQL for the text at ``path`` (object keys) inside the JSON text ``column``."""
        ...

    def ping(self) -> None:
        """Raise unless the database answers a query."""
        ...

    def close(self) -> None:
        """Give the connection back (close it, or return it to the pool)."""
        ...
