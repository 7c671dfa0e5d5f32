"""Secrets every node of one catalog must share, kept in the catalog itself.

Nodes that share a PostgreSQL catalog verify each other's JWTs
(webapp/tokens.py), so they need one signing secret. Unless the ``token_secret`` setting
names one, the first node that needs it makes a random one and stores it here (table
``service_secrets``, nodeschema.py); the others read it. A race between two first nodes
is settled by the primary key: both read the one that was stored.
"""

from __future__ import annotations

from collections.abc import Callable

from webapp.catalog.database import Database


class SharedSecrets:
    """The shared secrets of the catalog (``webapp.catalog.interface.SharedSecrets``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> str | None:
        """The secret ``name``, or None before one was made."""
        row = self.db.row("SELECT value FROM service_secrets WHERE name = ?", (name,))
        return None if row is None else str(row["value"])

    def get_or_make(self, name: str, make: Callable[[], str]) -> str:
        """The secret ``name``; made with ``make()`` and stored first if there is none
        (the stored one wins when several nodes make one at once)."""
        from webapp.catalog import now_iso

        found = self.get(name)
        if found is not None:
            return found
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO service_secrets (name, value, created) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, make(), now_iso()),
            )
            stored = self.get(name)
        assert stored is not None  # inserted, or present already
        return stored
