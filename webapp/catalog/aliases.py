"""Catalog queries for source image aliases (every backend; schema in aliasschema.py).

An alias names one image of its organization by its full hash. Whether that image exists
is checked in the transaction that writes the alias; afterwards the image may be deleted
and the alias stays (renders of it are then 404 until it is repointed or the image is
restored).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.catalog.database import Database
from webapp.catalog.errors import Conflict, InvalidReference, NotFound
from webapp.catalog.records import Alias, AliasWrite

#: Most aliases one organization may hold: rokka asks to keep them for the few images
#: that need them; the bound keeps the table small.
MAX_ALIASES_PER_ORG = 10_000


def _record(row: Mapping[str, Any]) -> Alias:
    return Alias(name=row["name"], hash=row["hash"], created=row["created"])


class Aliases:
    """The aliases part of the catalog (``webapp.catalog.interface.Aliases``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, org_id: str, name: str) -> Alias | None:
        """The alias ``name`` (case-sensitive), or None."""
        row = self.db.row(
            "SELECT name, hash, created FROM sourceimage_aliases "
            "WHERE organization_id = ? AND name = ?",
            (org_id, name),
        )
        return _record(row) if row else None

    def put(self, org_id: str, name: str, image_hash: str, *, overwrite: bool) -> AliasWrite:
        """Create the alias, or with ``overwrite`` repoint it, to the full ``image_hash``.

        ``Conflict`` when it exists and ``overwrite`` is False, or when the organization
        holds ``MAX_ALIASES_PER_ORG`` already; ``InvalidReference`` (parameter ``hash``)
        when no live image of the organization has that hash.
        """
        from webapp.catalog import now_iso

        created = now_iso()
        with self.db.transaction():
            live = self.db.row(
                "SELECT 1 AS x FROM sourceimages "
                "WHERE organization_id = ? AND hash = ? AND deleted_at IS NULL",
                (org_id, image_hash),
            )
            if live is None:
                raise InvalidReference(f"source image {image_hash} not found", parameter="hash")
            existing = self.get(org_id, name)
            if existing is not None and not overwrite:
                raise Conflict(f"alias {name} already exists; use ?overwrite=true to repoint it")
            if existing is None:
                counted = self.db.row(
                    "SELECT COUNT(*) AS n FROM sourceimage_aliases WHERE organization_id = ?",
                    (org_id,),
                )
                if counted is not None and int(counted["n"]) >= MAX_ALIASES_PER_ORG:
                    raise Conflict(
                        f"an organization may have at most {MAX_ALIASES_PER_ORG} aliases"
                    )
            self.db.execute(
                "INSERT INTO sourceimage_aliases (organization_id, name, hash, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (organization_id, name) DO UPDATE SET "
                "hash = excluded.hash, created = excluded.created",
                (org_id, name, image_hash, created),
            )
        return AliasWrite(created=existing is None, alias=Alias(name, image_hash, created))

    def delete(self, org_id: str, name: str) -> None:
        """Delete the alias; ``NotFound`` if there is none."""
        with self.db.transaction():
            if not self.db.execute(
                "DELETE FROM sourceimage_aliases WHERE organization_id = ? AND name = ?",
                (org_id, name),
            ):
                raise NotFound(f"alias {name} not found")
