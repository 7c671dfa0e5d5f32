"""Catalog queries for remote images (every backend): the record of which source image
a remote URL of an organization was stored as, when it was fetched and when it expires.

Written after the image itself is stored (webapp/remoteimages.py): a crash in between
leaves an image without a record, and the next render fetches again and finds the same
image (its hash depends only on the URL and the bytes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webapp.catalog.database import Database
from webapp.catalog.records import Record


@dataclass(frozen=True, slots=True)
class RemoteImage(Record):
    """A remote URL of an organization and the image it is stored as.

    ``fetched`` and ``expires`` are ISO 8601 UTC times; ``expires`` None: never again.
    """

    organization_id: str
    url: str
    hash: str
    fetched: str
    expires: str | None

    def expired(self, now: str) -> bool:
        """Whether the URL must be fetched again at ``now`` (an ISO time, as ``expires``)."""
        return self.expires is not None and self.expires <= now


def url_key(url: str) -> str:
    """The key of ``url`` in the table: its SHA-256, hex."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: Mapping[str, Any]) -> RemoteImage:
    return RemoteImage(
        organization_id=row["organization_id"],
        url=row["url"],
        hash=row["hash"],
        fetched=row["fetched"],
        expires=row["expires"],
    )


_COLUMNS = "organization_id, url, hash, fetched, expires"


class RemoteImages:
    """The remote images part of the catalog (``webapp.catalog.interface.RemoteImages``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, organization_id: str, url: str) -> RemoteImage | None:
        """The record of ``url`` in the organization, or None."""
        row = self.db.row(
            f"SELECT {_COLUMNS} FROM remote_images WHERE organization_id = ? AND url_key = ?",
            (organization_id, url_key(url)),
        )
        return _record(row) if row else None

    def put(
        self,
        organization_id: str,
        url: str,
        image_hash: str,
        *,
        fetched: str,
        expires: str | None,
    ) -> RemoteImage:
        """Record (or replace the record of) ``url`` as ``image_hash``."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO remote_images (organization_id, url_key, url, hash, fetched, "
                "expires) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (organization_id, url_key) "
                "DO UPDATE SET url = excluded.url, hash = excluded.hash, "
                "fetched = excluded.fetched, expires = excluded.expires",
                (organization_id, url_key(url), url, image_hash, fetched, expires),
            )
        return RemoteImage(organization_id, url, image_hash, fetched, expires)

    def postpone(self, organization_id: str, url: str, expires: str | None) -> bool:
        """Set a new expiry for ``url`` (a failed refresh keeps the image a while);
        whether there was a record."""
        with self.db.transaction():
            return bool(
                self.db.execute(
                    "UPDATE remote_images SET expires = ? WHERE organization_id = ? "
                    "AND url_key = ?",
                    (expires, organization_id, url_key(url)),
                )
            )

    def repoint(self, organization_id: str, old_hash: str, new_hash: str) -> int:
        """Every URL recorded as ``old_hash`` renders ``new_hash`` from now on (the image
        was derived: new dynamic metadata or protection); the number of records changed."""
        with self.db.transaction():
            return self.db.execute(
                "UPDATE remote_images SET hash = ? WHERE organization_id = ? AND hash = ?",
                (new_hash, organization_id, old_hash),
            )

    def urls_of(self, organization_id: str, image_hash: str) -> list[str]:
        """The URLs recorded as ``image_hash``, ordered."""
        rows = self.db.rows(
            "SELECT url FROM remote_images WHERE organization_id = ? AND hash = ? ORDER BY url",
            (organization_id, image_hash),
        )
        return [r["url"] for r in rows]
