"""A real PostgreSQL for the tests, started by the tests themselves.

The ``pgserver`` package bundles PostgreSQL 16 binaries and runs ``initdb`` and
``pg_ctl`` for us; run as root it starts the server as its own unprivileged user (the
PostgreSQL server refuses root). It listens on a Unix socket in the data directory
only (no TCP port, so test runs never collide). One server per test session, made
fast and not crash-safe (no fsync: its data is thrown away). Tests get the shared
database emptied (``clean_database``), or a fresh one copied from a template the
catalog migrations were applied to once (``new_database``, dropped afterwards).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from webapp.catalog.postgres import PostgresBackend

TEMPLATE = "cropstack_template"
SHARED = "cropstack_shared"
#: Every table the catalog migrations make, emptied between tests.
_TABLES = (
    "sourceimage_aliases, sourceimage_facet_counts, sourceimage_words, sourceimage_word_scopes, "
    "sourceimage_values, sourceimages, stacks, memberships, api_keys, users, organizations, "
    "remote_images, usage_deliveries, usage_storage, render_generations, blob_deletions, "
    "service_secrets"
)


class PostgresForTests:
    """A running server under ``root`` and the databases made on it."""

    def __init__(self, root: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(root, cleanup_mode="stop")
        self.admin_url = self.server.get_uri("postgres")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name, value in (("fsync", "off"), ("synchronous_commit", "off"),
                                ("full_page_writes", "off")):  # fmt: skip
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        template = PostgresBackend(self.server.get_uri(TEMPLATE))
        try:
            template.migrate()
        finally:
            template.close()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {SHARED} TEMPLATE {TEMPLATE}")

    def url(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        return self.server.get_uri(database)

    def clean_database(self) -> str:
        """The shared database with every catalog table emptied; its URL. Its user
        must have closed its connections (an app's pool) before the next call."""
        url = self.url(SHARED)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY")
        return url

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
