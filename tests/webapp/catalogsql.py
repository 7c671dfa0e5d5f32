"""Test fixtures' own access to the catalog database, for set-up the API cannot do
(back-dating rows, rows of an older layout). Production code never does this: routes
and ingest hold a ``Catalog`` and its unit of work, not SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from webapp.catalog import CatalogBackend
from webapp.catalog.database import Database


@contextmanager
def database(target: Flask | CatalogBackend) -> Iterator[Database]:
    """The database of an app (or backend) inside one write transaction."""
    backend = target.extensions["cropstack.catalog"] if isinstance(target, Flask) else target
    handle = backend.open()
    try:
        with handle.unit_of_work():
            yield handle._db
    finally:
        handle.close()


@contextmanager
def reading(target: Flask | CatalogBackend) -> Iterator[Database]:
    """The database of an app (or backend) for reads only (no write transaction, so it
    works on a read-only catalog too)."""
    backend = target.extensions["cropstack.catalog"] if isinstance(target, Flask) else target
    handle = backend.open()
    try:
        yield handle._db
    finally:
        handle.close()
