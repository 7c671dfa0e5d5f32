"""Catalog queries for albums: the images whose user metadata ``array:albums`` holds a
name, as rokka's gallery and ``render.imagesByAlbum`` read them (every backend).

Read from the search index (``sourceimage_values``), so both backends answer from the same
rows their searches use. An album lists only live, unprotected images that are not
hidden; favorites are the images with ``int:favorite`` of 1 or more, hidden ones those with
``int:hide`` of 1 or more (the fields rokka's gallery sets). Newest first.
"""

from __future__ import annotations

from webapp.catalog.database import Database
from webapp.catalog.records import AlbumImage, AlbumPage


def _user_int_at_least_one(field: str) -> str:
    """SQL: image ``s`` has the user field ``int:{field}`` >= 1 (``field`` is a constant)."""
    return (
        "EXISTS (SELECT 1 FROM sourceimage_values AS f WHERE f.organization_id = "
        "s.organization_id AND f.hash = s.hash AND f.source = 'user' AND f.type = 'int' "
        f"AND f.field = '{field}' AND f.value_num >= 1)"
    )


_FAVORITE = _user_int_at_least_one("favorite")
_HIDDEN = _user_int_at_least_one("hide")
_LISTED = (
    "FROM sourceimages AS s WHERE s.organization_id = ? AND s.deleted_at IS NULL "
    "AND s.protected = 0 AND s.hash IN (SELECT a.hash FROM sourceimage_values AS a "
    "WHERE a.organization_id = ? AND a.source = 'user' AND a.field = 'albums' "
    f"AND a.type = 'array' AND a.value_text = ?) AND NOT {_HIDDEN}"
)


class Albums:
    """The albums part of the catalog (``webapp.catalog.interface.Albums``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self, org_id: str, album: str, *, favorites: bool, limit: int, offset: int
    ) -> AlbumPage:
        """``limit`` images of ``album`` from ``offset`` (newest first) and how many it
        lists in all; only favorites when ``favorites``. ``limit`` >= 0, ``offset`` >= 0."""
        where = _LISTED + (f" AND {_FAVORITE}" if favorites else "")
        params = (org_id, org_id, album)
        counted = self.db.row(f"SELECT COUNT(*) AS n {where}", params)
        total = int(counted["n"]) if counted else 0
        rows = self.db.rows(
            "SELECT s.hash, s.short_hash, s.name, s.format, s.mimetype, s.width, s.height, "
            f"{_FAVORITE} AS favorite {where} ORDER BY s.created DESC, s.hash LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        images = [
            AlbumImage(
                hash=r["hash"],
                short_hash=r["short_hash"],
                name=r["name"],
                format=r["format"],
                mimetype=r["mimetype"],
                width=int(r["width"]),
                height=int(r["height"]),
                favorite=bool(r["favorite"]),
            )
            for r in rows
        ]
        return AlbumPage(total=total, images=images)
