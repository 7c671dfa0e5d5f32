"""Catalog queries for source images: reading, creating and changing ``sourceimages`` rows.

Searching them is ``webapp/catalog/imagesearch.py``.

Rows are keyed by (organization, hash). ``short_hash`` is fixed when a row is created:
the shortest prefix (at least 6 characters) that no other hash of the organization,
soft-deleted ones included, starts with. A short hash therefore never changes and never
becomes ambiguous when later images arrive. Soft-deleted rows keep their ``deleted_at``
until ``purge_expired`` removes them after the restore window.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from webapp.catalog import now_iso
from webapp.errors import ApiError

if TYPE_CHECKING:
    from webapp.catalog import Catalog

_JSON_COLUMNS = ("user_metadata", "dynamic_metadata", "static_metadata")
_BOOL_COLUMNS = ("opaque", "animated", "protected", "locked")

#: Columns a new row is inserted with (``short_hash`` and ``created`` are added).
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


def locked_error() -> ApiError:
    """The answer when a locked image would be deleted or its user metadata changed."""
    return ApiError(409, "Source image is locked; unlock it first")


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A ``sourceimages`` row as a dict, JSON columns decoded and flags as booleans."""
    image = dict(row)
    for column in _JSON_COLUMNS:
        image[column] = json.loads(image[column])
    for column in _BOOL_COLUMNS:
        image[column] = bool(image[column])
    return image


def to_api(image: dict[str, Any], org_name: str, *, with_deleted: bool = False) -> dict[str, Any]:
    """The rokka source image object; every field always present.

    ``deleted`` is added when ``with_deleted`` (``?deleted=true`` and restore answers).
    """
    obj = {
        "organization": org_name,
        "hash": image["hash"],
        "short_hash": image["short_hash"],
        "binary_hash": image["binary_hash"],
        "created": image["created"],
        "name": image["name"],
        "mimetype": image["mimetype"],
        "format": image["format"],
        "size": image["size"],
        "width": image["width"],
        "height": image["height"],
        "link": f"/sourceimages/{org_name}/{image['hash']}",
        "user_metadata": image["user_metadata"],
        "dynamic_metadata": image["dynamic_metadata"],
        "static_metadata": image["static_metadata"],
        "opaque": image["opaque"],
        "animated": image["animated"],
        "protected": image["protected"],
        "locked": image["locked"],
    }
    if with_deleted:
        obj["deleted"] = image["deleted_at"] is not None
    return obj


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


@dataclass(frozen=True, slots=True)
class NewImage:
    """Everything needed to create a row, besides organization, short hash and time."""

    hash: str
    binary_hash: str
    blob_key: str
    name: str
    format: str
    mimetype: str
    size: int
    width: int
    height: int
    user_metadata: dict[str, Any]
    dynamic_metadata: dict[str, Any]
    static_metadata: dict[str, Any]
    opaque: bool
    animated: bool
    protected: bool


class Images:
    """The images part of the catalog interface."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- reads ---------------------------------------------------------------------------

    def get_exact(self, organization_id: str, image_hash: str) -> dict[str, Any] | None:
        """The row with exactly this 40-hex hash, live or soft-deleted."""
        row = self.catalog.query_one(
            "SELECT * FROM sourceimages WHERE organization_id = ? AND hash = ?",
            (organization_id, image_hash),
        )
        return row_dict(row) if row else None

    def find(
        self, organization_id: str, ref: str, *, deleted_since: str | None = None
    ) -> dict[str, Any] | None:
        """The image ``ref`` names: a full hash, a short hash or an unambiguous prefix.

        Live images only, unless ``deleted_since`` is given: then images soft-deleted at
        or after that time are found too. Ambiguous prefixes find nothing.
        """
        row = None
        if len(ref) == 40:
            row = self.catalog.query_one(
                "SELECT * FROM sourceimages WHERE organization_id = ? AND hash = ?",
                (organization_id, ref),
            )
        else:
            row = self.catalog.query_one(
                "SELECT * FROM sourceimages WHERE organization_id = ? AND short_hash = ?",
                (organization_id, ref),
            )
            if row is None:
                # ref is [0-9a-f]+ (checked by the route), so it holds no LIKE wildcards.
                rows = self.catalog.query(
                    "SELECT * FROM sourceimages WHERE organization_id = ? AND hash LIKE ? LIMIT 2",
                    (organization_id, ref + "%"),
                )
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            return None
        if row["deleted_at"] is not None and (
            deleted_since is None or row["deleted_at"] < deleted_since
        ):
            return None
        return row_dict(row)

    def live_by_binary_hash(self, organization_id: str, binary_hash: str) -> list[dict[str, Any]]:
        """Every live image of the organization with these bytes."""
        rows = self.catalog.query(
            "SELECT * FROM sourceimages WHERE organization_id = ? AND binary_hash = ? "
            "AND deleted_at IS NULL ORDER BY hash",
            (organization_id, binary_hash),
        )
        return [row_dict(r) for r in rows]

    def blob_referenced(self, blob_key: str) -> bool:
        """Whether any row of any organization, soft-deleted ones included, needs the blob."""
        row = self.catalog.query_one(
            "SELECT 1 FROM sourceimages WHERE blob_key = ? LIMIT 1", (blob_key,)
        )
        return row is not None

    # -- writes (each runs inside ``catalog.write()``; nested calls join it) --------------

    def _short_hash(self, organization_id: str, image_hash: str) -> str:
        """Shortest prefix (≥ 6) of ``image_hash`` no other hash of the org starts with."""
        before = self.catalog.conn.execute(
            "SELECT hash FROM sourceimages WHERE organization_id = ? AND hash < ? "
            "ORDER BY hash DESC LIMIT 1",
            (organization_id, image_hash),
        ).fetchone()
        after = self.catalog.conn.execute(
            "SELECT hash FROM sourceimages WHERE organization_id = ? AND hash > ? "
            "ORDER BY hash ASC LIMIT 1",
            (organization_id, image_hash),
        ).fetchone()
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
    ) -> tuple[dict[str, Any], bool]:
        """Create the row unless (organization, hash) exists: (row, created?).

        ``INSERT … ON CONFLICT DO NOTHING`` and a re-select make concurrent creators of
        the same image (other processes included) end with one row and no error.
        """
        with self.catalog.write() as conn:
            values = {
                "organization_id": organization_id,
                "hash": image.hash,
                "short_hash": "",
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
            existing = self.get_exact(organization_id, image.hash)
            if existing is not None:
                return existing, False
            values["short_hash"] = self._short_hash(organization_id, image.hash)
            placeholders = ", ".join("?" for _ in _COLUMNS)
            cursor = conn.execute(
                f"INSERT INTO sourceimages ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
                "ON CONFLICT (organization_id, hash) DO NOTHING",
                [values[c] for c in _COLUMNS],
            )
            inserted = cursor.rowcount == 1
            row = self.get_exact(organization_id, image.hash)
            assert row is not None
            return row, inserted

    def revive(self, organization_id: str, image: NewImage) -> dict[str, Any]:
        """Turn a soft-deleted row back into a fresh image made of ``image``.

        Used when deleted bytes are uploaded (or copied) again: the result is what a
        first upload would give, only the short hash stays.
        """
        with self.catalog.write() as conn:
            conn.execute(
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
            row = self.get_exact(organization_id, image.hash)
            assert row is not None
            return row

    def update(self, organization_id: str, image_hash: str, **changes: Any) -> dict[str, Any]:
        """Set columns of one row (JSON columns given as Python values); the new row."""
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
        with self.catalog.write() as conn:
            if assignments:
                conn.execute(
                    f"UPDATE sourceimages SET {', '.join(assignments)} "
                    "WHERE organization_id = ? AND hash = ?",
                    [*params, organization_id, image_hash],
                )
            row = self.get_exact(organization_id, image_hash)
            assert row is not None
            return row

    def soft_delete(self, organization_id: str, hashes: list[str]) -> int:
        """Mark live images deleted (restorable); refuses (409) if any is locked."""
        with self.catalog.write() as conn:
            for image_hash in hashes:
                row = self.get_exact(organization_id, image_hash)
                if row is not None and row["locked"] and row["deleted_at"] is None:
                    raise locked_error()
            when = now_iso()
            count = 0
            for image_hash in hashes:
                count += conn.execute(
                    "UPDATE sourceimages SET deleted_at = ? WHERE organization_id = ? "
                    "AND hash = ? AND deleted_at IS NULL",
                    (when, organization_id, image_hash),
                ).rowcount
            return count

    def restore(self, organization_id: str, image_hash: str) -> dict[str, Any]:
        """Clear the deletion mark of one row; the row."""
        with self.catalog.write() as conn:
            conn.execute(
                "UPDATE sourceimages SET deleted_at = NULL WHERE organization_id = ? AND hash = ?",
                (organization_id, image_hash),
            )
            row = self.get_exact(organization_id, image_hash)
            assert row is not None
            return row

    def copy_to(self, image: dict[str, Any], destination_id: str, *, overwrite: bool) -> str:
        """Copy ``image`` (a row) into organization ``destination_id``, sharing its blob.

        Returns ``"created"`` (new or revived row), ``"overwritten"`` (an existing live
        row took the source's name and metadata) or ``"exists"`` (left alone because
        ``overwrite`` is False). A locked destination is never overwritten (409).
        """
        new = new_image_from_row(image)
        with self.catalog.write():
            existing = self.get_exact(destination_id, image["hash"])
            if existing is None:
                self.insert(destination_id, new, created=image["created"])
                return "created"
            if existing["deleted_at"] is not None:
                self.revive(destination_id, new)
                return "created"
            if not overwrite:
                return "exists"
            if existing["locked"]:
                raise locked_error()
            self.update(
                destination_id,
                image["hash"],
                name=image["name"],
                user_metadata=image["user_metadata"],
                static_metadata=image["static_metadata"],
            )
            return "overwritten"

    def purge_expired(self, cutoff: str) -> int:
        """Delete rows soft-deleted before ``cutoff`` for good; the number removed."""
        with self.catalog.write() as conn:
            return conn.execute(
                "DELETE FROM sourceimages WHERE deleted_at IS NOT NULL AND deleted_at < ?",
                (cutoff,),
            ).rowcount


def new_image_from_row(image: dict[str, Any], **changes: Any) -> NewImage:
    """A ``NewImage`` copying a row, with ``changes`` applied (e.g. new hash/metadata)."""
    values = {name: image[name] for name in NewImage.__dataclass_fields__}
    values.update(changes)
    return NewImage(**values)
