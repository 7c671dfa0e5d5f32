"""Usage figures per organization and UTC day: deliveries of render URLs and storage.

The tables and the storage triggers are migration 4 (``usageschema.py``); queries here
are written once for both dialects. Days are ``YYYY-MM-DD`` text (UTC), which sorts.
The records live here rather than in ``records.py``: only this group uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webapp.catalog.database import Database
from webapp.catalog.records import Record

#: The migration that created the usage tables; its date is when counting began.
USAGE_MIGRATION = 4


@dataclass(frozen=True, slots=True)
class DeliveryCount(Record):
    """What render URLs delivered for one organization on one UTC day: answers with an
    image (``renders``), those of them read from the render cache (``cache_hits``), and
    the bytes of their bodies. All counts >= 0."""

    organization_id: str
    day: str
    renders: int
    cache_hits: int
    bytes: int


@dataclass(frozen=True, slots=True)
class StorageDay(Record):
    """An organization's live source images at the end of one UTC day (now, for today):
    the sum of their sizes in bytes and their number."""

    organization_id: str
    day: str
    bytes: int
    files: int


@dataclass(frozen=True, slots=True)
class BilledOrganization(Record):
    """An organization billed with a master organization: itself or one of its sub
    organizations (``master_organization`` naming it)."""

    id: str
    name: str
    created: str


class Usage:
    """Reads and adds the usage figures (``GET /stats``, ``GET /billing``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_deliveries(self, counts: Sequence[DeliveryCount]) -> None:
        """Add ``counts`` to the stored ones (an UPSERT that adds, in one transaction), so
        the counts of every worker and node sum up whatever order they arrive in."""
        with self.db.transaction():
            for c in counts:
                self.db.execute(
                    "INSERT INTO usage_deliveries "
                    "(organization_id, day, renders, cache_hits, bytes) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (organization_id, day) DO UPDATE SET "
                    "renders = usage_deliveries.renders + excluded.renders, "
                    "cache_hits = usage_deliveries.cache_hits + excluded.cache_hits, "
                    "bytes = usage_deliveries.bytes + excluded.bytes",
                    (c.organization_id, c.day, c.renders, c.cache_hits, c.bytes),
                )

    def deliveries(self, org_ids: Sequence[str], first: str, last: str) -> list[DeliveryCount]:
        """The delivery rows of ``org_ids`` from day ``first`` to ``last`` (inclusive),
        by organization and day; days without a delivery have no row."""
        if not org_ids:
            return []
        marks = ", ".join("?" for _ in org_ids)
        rows = self.db.rows(
            "SELECT organization_id, day, renders, cache_hits, bytes FROM usage_deliveries "
            f"WHERE organization_id IN ({marks}) AND day >= ? AND day <= ? "
            "ORDER BY organization_id, day",
            (*org_ids, first, last),
        )
        return [
            DeliveryCount(
                organization_id=r["organization_id"],
                day=r["day"],
                renders=int(r["renders"]),
                cache_hits=int(r["cache_hits"]),
                bytes=int(r["bytes"]),
            )
            for r in rows
        ]

    def storage(self, org_id: str, first: str, last: str) -> list[StorageDay]:
        """The storage rows of ``org_id`` from ``first`` to ``last`` (inclusive), by day,
        preceded by the latest row before ``first`` when there is one (the value the
        first days carry until a row changes it)."""
        before = self.db.row(
            "SELECT organization_id, day, bytes, files FROM usage_storage "
            "WHERE organization_id = ? AND day < ? ORDER BY day DESC LIMIT 1",
            (org_id, first),
        )
        rows = self.db.rows(
            "SELECT organization_id, day, bytes, files FROM usage_storage "
            "WHERE organization_id = ? AND day >= ? AND day <= ? ORDER BY day",
            (org_id, first, last),
        )
        return [
            StorageDay(
                organization_id=r["organization_id"],
                day=r["day"],
                bytes=int(r["bytes"]),
                files=int(r["files"]),
            )
            for r in ([before] if before is not None else []) + list(rows)
        ]

    def counting_since(self) -> str | None:
        """The UTC day counting began (migration 4 was applied), or None if unknown."""
        row = self.db.row(
            "SELECT applied FROM schema_migrations WHERE version = ?", (USAGE_MIGRATION,)
        )
        return None if row is None else str(row["applied"])[:10]

    def billed_with(self, org_name: str) -> list[BilledOrganization]:
        """The organization ``org_name`` and its sub organizations (those naming it as
        ``master_organization``), by name; empty when it does not exist."""
        rows = self.db.rows(
            "SELECT id, name, created FROM organizations "
            "WHERE name = ? OR master_organization = ? ORDER BY name",
            (org_name, org_name),
        )
        return [BilledOrganization(id=r["id"], name=r["name"], created=r["created"]) for r in rows]
