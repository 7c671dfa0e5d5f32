"""A real PostgreSQL for the tests, started by the tests themselves.

The ``pgserver`` package bundles PostgreSQL 16 binaries and runs ``initdb`` and
``pg_ctl`` for us; run as root it starts the server as its own unprivileged user (the
PostgreSQL server refuses root). It listens on a Unix socket in the data directory
only (no TCP port, so test runs never collide). One server per test session; each test
gets a fresh database copied from a template the catalog migrations were applied to
once, and dropped afterwards.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from webapp.catalog.postgres import PostgresBackend

TEMPLATE = "cropstack_template"


class PostgresForTests:
    """A running server under ``root`` and the databases made on it."""

    def __init__(self, root: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(root, cleanup_mode="stop")
        self.admin_url = self.server.get_uri("postgres")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        template = PostgresBackend(self.server.get_uri(TEMPLATE))
        try:
            template.migrate()
        finally:
            template.close()

    def url(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        return self.server.get_uri(database)

    def new_database(self) -> str:
        """A fresh, migrated database; its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def empty_database(self) -> str:
        """A fresh database without the catalog schema; its URL."""
        name = "e_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (its connections are ended first)."""
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server."""
        self.server.cleanup()
