"""Catalog queries for source images: reading, creating and changing ``sourceimages`` rows
(every backend). Searching them is ``imagesearch.py`` (SQLite) / ``pgsearch.py``.

Rows are keyed by (organization, hash). ``short_hash`` is fixed when a row is created:
the shortest prefix (at least 6 characters) that no other hash of the organization,
soft-deleted ones included, starts with. A short hash therefore never changes and never
becomes ambiguous when later images arrive. Soft-deleted rows keep their ``deleted_at``
until ``purge_expired`` removes them after the restore window.

Every rule (locked images, existing rows) is checked inside the write transaction that
acts on it. Every write that changes what search reads calls ``Database.index_image`` in
the same transaction (PostgreSQL writes the index rows there; SQLite's triggers already
have).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from webapp.catalog.database import Database
from webapp.catalog.errors import ImageLocked, NotFound
from webapp.catalog.records import NewImage, SourceImage, new_image_from

_JSON_COLUMNS = ("user_metadata", "dynamic_metadata", "static_metadata")

#: Columns of a row, in the order they are inserted.
_COLUMNS = (
    "organization_id",
    "hash",
    "short_hash",
    "binary_hash",
    "blob_key",
    "name",
    "format",
    "mimetype",
    "size",
    "width",
    "height",
    "user_metadata",
    "dynamic_metadata",
    "static_metadata",
    "opaque",
    "animated",
    "protected",
    "locked",
    "created",
    "deleted_at",
)
SELECT_COLUMNS = ", ".join(f"sourceimages.{c}" for c in _COLUMNS)


def image_record(row: Mapping[str, Any]) -> SourceImage:
    """A ``sourceimages`` row as a record: JSON decoded, flags as booleans."""
    return SourceImage(
        organization_id=row["organization_id"],
        hash=row["hash"],
        short_hash=row["short_hash"],
        binary_hash=row["binary_hash"],
        blob_key=row["blob_key"],
        name=row["name"],
        format=row["format"],
        mimetype=row["mimetype"],
        size=int(row["size"]),
        width=int(row["width"]),
        height=int(row["height"]),
        user_metadata=json.loads(row["user_metadata"]),
        dynamic_metadata=json.loads(row["dynamic_metadata"]),
        static_metadata=json.loads(row["static_metadata"]),
        opaque=bool(row["opaque"]),
        animated=bool(row["animated"]),
        protected=bool(row["protected"]),
        locked=bool(row["locked"]),
        created=row["created"],
        deleted_at=row["deleted_at"],
    )


def _common_prefix(a: str, b: str | None) -> int:
    if b is None:
        return 0
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def restore_cutoff(restore_days: int) -> str:
    """The oldest ``deleted_at`` still restorable, as an ISO string (compares as text)."""
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=restore_days)
    return when.isoformat()


CopyOutcome = Literal["created", "overwritten", "exists"]


class Images:
    """The images part of the catalog (``webapp.catalog.interface.Images``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _reindex(self, organization_id: str, image_hash: str) -> None:
        """Rebuild the image's search index rows (a no-op where triggers keep them)."""
        self.db.index_image(organization_id, image_hash)

    # -- reads ---------------------------------------------------------------------------

    def _written(self, organization_id: str, image_hash: str) -> SourceImage:
        """The image just written; ``NotFound`` if a concurrent purge removed it first."""
        image = self.get_exact(organization_id, image_hash)
        if image is None:
            raise NotFound(f"Source image {image_hash} not found")
        return image

    def _select(self, where: str, params: tuple[Any, ...], limit: str = "") -> list[SourceImage]:
        rows = self.db.rows(
            f"SELECT {SELECT_COLUMNS} FROM sourceimages WHERE {where}{limit}", params
        )
        return [image_record(r) for r in rows]

    def get_exact(self, organization_id: str, image_hash: str) -> SourceImage | None:
        """The image with exactly this 40-hex hash, live or soft-deleted."""
        found = self._select("organization_id = ? AND hash = ?", (organization_id, image_hash))
        return found[0] if found else None

    def find(
        self, organization_id: str, ref: str, *, deleted_since: str | None = None
    ) -> SourceImage | None:
        """The image ``ref`` names: a full hash, a short hash or an unambiguous prefix.

        Live images only, unless ``deleted_since`` is given: then images soft-deleted at
        or after that time are found too. Ambiguous prefixes find nothing.
        """
        image = None
        if len(ref) == 40:
            image = self.get_exact(organization_id, ref)
        else:
            found = self._select("organization_id = ? AND short_hash = ?", (organization_id, ref))
            if not found:
                # ref is [0-9a-f]+ (checked by the route), so it holds no LIKE wildcards.
                found = self._select(
                    "organization_id = ? AND hash LIKE ?", (organization_id, ref + "%"), " LIMIT 2"
                )
                found = found if len(found) == 1 else []
            image = found[0] if found else None
        if image is None:
            return None
        if image.deleted_at is not None and (
            deleted_since is None or image.deleted_at < deleted_since
        ):
            return None
        return image

    def live_by_binary_hash(self, organization_id: str, binary_hash: str) -> list[SourceImage]:
        """Every live image of the organization with these bytes."""
        return self._select(
            "organization_id = ? AND binary_hash = ? AND deleted_at IS NULL ORDER BY hash",
            (organization_id, binary_hash),
        )

    def blob_referenced(self, blob_key: str) -> bool:
        """Whether any row of any organization, soft-deleted ones included, needs the blob."""
        return (
            self.db.row("SELECT 1 FROM sourceimages WHERE blob_key = ? LIMIT 1", (blob_key,))
            is not None
        )

    # -- writes (each in a transaction; inside a unit of work they join it) ----------------

    def _short_hash(self, organization_id: str, image_hash: str) -> str:
        """Shortest prefix (≥ 6) of ``image_hash`` no other hash of the org starts with."""
        before = self.db.row(
            "SELECT hash FROM sourceimages WHERE organization_id = ? AND hash < ? "
            "ORDER BY hash DESC LIMIT 1",
            (organization_id, image_hash),
        )
        after = self.db.row(
            "SELECT hash FROM sourceimages WHERE organization_id = ? AND hash > ? "
            "ORDER BY hash ASC LIMIT 1",
            (organization_id, image_hash),
        )
        shared = max(
            _common_prefix(image_hash, before["hash"] if before else None),
            _common_prefix(image_hash, after["hash"] if after else None),
        )
        return image_hash[: max(6, shared + 1)]

    def insert(
        self,
        organization_id: str,
        image: NewImage,
        *,
        created: str | None = None,
        locked: bool = False,
    ) -> tuple[SourceImage, bool]:
        """Create the image unless (organization, hash) exists: (image, created?).

        ``INSERT … ON CONFLICT DO NOTHING`` and a re-select make concurrent creators of
        the same image (other processes and nodes included) end with one row, no error.
        """
        from webapp.catalog import now_iso

        with self.db.transaction():
            existing = self.get_exact(organization_id, image.hash)
            if existing is not None:
                return existing, False
            values = {
                "organization_id": organization_id,
                "hash": image.hash,
                "short_hash": self._short_hash(organization_id, image.hash),
                "binary_hash": image.binary_hash,
                "blob_key": image.blob_key,
                "name": image.name,
                "format": image.format,
                "mimetype": image.mimetype,
                "size": image.size,
                "width": image.width,
                "height": image.height,
                "user_metadata": json.dumps(image.user_metadata),
                "dynamic_metadata": json.dumps(image.dynamic_metadata),
                "static_metadata": json.dumps(image.static_metadata),
                "opaque": int(image.opaque),
                "animated": int(image.animated),
                "protected": int(image.protected),
                "locked": int(locked),
                "created": created or now_iso(),
                "deleted_at": None,
            }
            placeholders = ", ".join("?" for _ in _COLUMNS)
            inserted = (
                self.db.execute(
                    f"INSERT INTO sourceimages ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
                    "ON CONFLICT (organization_id, hash) DO NOTHING",
                    [values[c] for c in _COLUMNS],
                )
                == 1
            )
            if inserted:
                self._reindex(organization_id, image.hash)
            row = self.get_exact(organization_id, image.hash)
            assert row is not None
            return row, inserted

    def revive(self, organization_id: str, image: NewImage) -> SourceImage:
        """Turn a soft-deleted row back into a fresh image made of ``image``.

        Used when deleted bytes are uploaded (or copied) again: the result is what a
        first upload would give, only the short hash stays.
        """
        from webapp.catalog import now_iso

        with self.db.transaction():
            self.db.execute(
                "UPDATE sourceimages SET name = ?, user_metadata = ?, dynamic_metadata = ?, "
                "static_metadata = ?, locked = 0, created = ?, deleted_at = NULL, blob_key = ? "
                "WHERE organization_id = ? AND hash = ?",
                (
                    image.name,
                    json.dumps(image.user_metadata),
                    json.dumps(image.dynamic_metadata),
                    json.dumps(image.static_metadata),
                    now_iso(),
                    image.blob_key,
                    organization_id,
                    image.hash,
                ),
            )
            self._reindex(organization_id, image.hash)
            return self._written(organization_id, image.hash)

    def update(
        self,
        organization_id: str,
        image_hash: str,
        *,
        unless_locked: bool = False,
        **changes: Any,
    ) -> SourceImage:
        """Set fields of one image (JSON fields as Python values); the new image.

        ``unless_locked``: raise ``ImageLocked`` if the image is locked (checked in the
        transaction that writes). Fields: name, locked, user/static/dynamic metadata.
        """
        allowed = {"name", "locked", "user_metadata", "static_metadata", "dynamic_metadata"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        assignments: list[str] = []
        params: list[Any] = []
        for column, value in changes.items():
            assignments.append(f"{column} = ?")
            if column in _JSON_COLUMNS:
                value = json.dumps(value)
            elif column == "locked":
                value = int(bool(value))
            params.append(value)
        with self.db.transaction():
            if unless_locked:
                current = self.get_exact(organization_id, image_hash)
                if current is not None and current.locked:
                    raise ImageLocked()
            if assignments:
                self.db.execute(
                    f"UPDATE sourceimages SET {', '.join(assignments)} "
                    "WHERE organization_id = ? AND hash = ?",
                    [*params, organization_id, image_hash],
                )
                if set(changes) - {"locked"}:
                    self._reindex(organization_id, image_hash)
            return self._written(organization_id, image_hash)

    def soft_delete(self, organization_id: str, hashes: list[str]) -> int:
        """Mark live images deleted (restorable); ``ImageLocked`` if any is locked."""
        from webapp.catalog import now_iso

        with self.db.transaction():
            for image_hash in hashes:
                row = self.get_exact(organization_id, image_hash)
                if row is not None and row.locked and row.deleted_at is None:
                    raise ImageLocked()
            when = now_iso()
            count = 0
            for image_hash in hashes:
                count += self.db.execute(
                    "UPDATE sourceimages SET deleted_at = ? WHERE organization_id = ? "
                    "AND hash = ? AND deleted_at IS NULL",
                    (when, organization_id, image_hash),
                )
            return count

    def restore(self, organization_id: str, image_hash: str) -> SourceImage:
        """Clear the deletion mark of one image; the image."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE sourceimages SET deleted_at = NULL WHERE organization_id = ? AND hash = ?",
                (organization_id, image_hash),
            )
            return self._written(organization_id, image_hash)

    def copy_to(self, image: SourceImage, destination_id: str, *, overwrite: bool) -> CopyOutcome:
        """Copy ``image`` into organization ``destination_id``, sharing its blob.

        Returns ``"created"`` (new or revived row), ``"overwritten"`` (an existing live
        row took the source's name and metadata) or ``"exists"`` (left alone because
        ``overwrite`` is False). A locked destination is never overwritten (``ImageLocked``).
        """
        new = new_image_from(image)
        with self.db.transaction():
            existing = self.get_exact(destination_id, image.hash)
            if existing is None:
                self.insert(destination_id, new, created=image.created)
                return "created"
            if existing.deleted_at is not None:
                self.revive(destination_id, new)
                return "created"
            if not overwrite:
                return "exists"
            if existing.locked:
                raise ImageLocked()
            self.update(
                destination_id,
                image.hash,
                name=image.name,
                user_metadata=image.user_metadata,
                static_metadata=image.static_metadata,
            )
            return "overwritten"

    def purge_expired(self, cutoff: str) -> int:
        """Delete rows soft-deleted before ``cutoff`` for good; the number removed."""
        with self.db.transaction():
            return self.db.execute(
                "DELETE FROM sourceimages WHERE deleted_at IS NOT NULL AND deleted_at < ?",
                (cutoff,),
            )


def facet_counts(
    db: Database, matches: str, arms: list[str], params: list[Any], keys: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Run the facet arms of one search together (every backend): ``matches`` selects the
    matching images' ``hash, format, mimetype`` as CTE ``m``, read once when several arms
    use it; each arm yields ``facet`` (its index in ``keys``), ``value`` and ``count``.
    Returns each key's values, most frequent first, ties by value."""
    once = "MATERIALIZED" if len(arms) > 1 else "NOT MATERIALIZED"
    rows = db.rows(
        f"WITH m AS {once} ({matches}) "
        + " UNION ALL ".join(arms)
        + " ORDER BY facet, count DESC, value ASC",
        params,
    )
    counted: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for r in rows:
        counted[keys[r["facet"]]].append({"value": r["value"], "count": int(r["count"])})
    return counted
