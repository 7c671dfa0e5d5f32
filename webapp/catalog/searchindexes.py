"""Schema version 7: covering indexes for search (issue 14, docs/search.md).

Measured on the 100,000-image benchmark catalog (benchmarks/test_search_bench.py), what
made the slowest searches slow was reading table rows for columns an index lacked:

* ``sourceimages_live_columns`` (SQLite) replaces ``sourceimages_live`` (its prefix):
  probing an image's liveness by hash now also yields ``created``, ``format`` and
  ``mimetype``, so a filtered page picks its rows by ``created`` and a ``format`` or
  ``mimetype`` facet counts the matches without reading one image row (a page reads
  only the rows it returns).
* ``sourceimage_values_facets`` (both): the string values of ``user:str`` and
  ``user:array`` fields by image, so counting a user facet over the matches reads the
  index alone (the row of each value held ``type`` and ``value_text``).

* PostgreSQL: ``sourceimages_live_columns`` too (live images only, ``INCLUDE``), and the
  per-column partial indexes of live images rebuilt with ``INCLUDE (hash)``: an OR search
  counts the union of its filters' hashes from the indexes alone. ``sourceimage_words``
  (migration 5) gets ``(created, hash)``: the page of a word search sorted by ``created``
  walks it newest first, testing each row's words, and stops after the page, instead of
  reading every match's row to sort them (11,000 matches: 29 -> 2 ms).

No table is added. The indexes are kept by the database in every write.

SQLite plans by the statistics ``ANALYZE`` leaves in ``sqlite_stat1``; without them (a
catalog nobody analysed) or with them for some indexes only (an analysed catalog after
this migration), its guesses took the wrong index for several searches (an exact
``user:str`` match 0.7 -> 19 ms, an OR search 8 -> 62 ms at 100,000 images).
``refresh_statistics`` therefore runs a bounded ``ANALYZE`` at start-up when they are
missing or stale.
"""

from __future__ import annotations

import logging

from webapp.catalog.database import Database

log = logging.getLogger(__name__)

#: Rows ANALYZE reads per index (PRAGMA analysis_limit): ~10 ms whatever the catalog's
#: size, and plans as good as a full ANALYZE's on the benchmark catalog.
ANALYSIS_LIMIT = 1000
#: Catalogs with fewer images are not analysed: any plan is fast on them.
MIN_IMAGES = 1000
#: Statistics are refreshed once the catalog holds this many times the images they saw.
GROWTH = 10

SQLITE_SEARCH_INDEXES = """
CREATE INDEX IF NOT EXISTS sourceimages_live_columns
    ON sourceimages(organization_id, hash, deleted_at, created, format, mimetype);
DROP INDEX IF EXISTS sourceimages_live;
CREATE INDEX IF NOT EXISTS sourceimage_values_facets
    ON sourceimage_values(organization_id, hash, source, field, type, value_text)
    WHERE type IN ('str', 'array') AND value_text IS NOT NULL;
"""

# PostgreSQL: the per-column partial indexes of live images carry the hash, so the
# images a column filter names (an OR's arms, counted as one union) come from the index
# alone; the live hashes carry created, format and mimetype (liveness of each match,
# column facets); the user string values by image serve facets. Index-only scans read
# the visibility map, which VACUUM (autovacuum) keeps.
_PG_COLUMN_INDEXES = "".join(
    f"""DROP INDEX IF EXISTS sourceimages_{column}_live;
CREATE INDEX sourceimages_{column}_live ON sourceimages(organization_id, {column})
    INCLUDE (hash) WHERE deleted_at IS NULL;
"""
    for column in ("size", "width", "height", "name", "format", "mimetype")
)
PG_SEARCH_INDEXES = (
    _PG_COLUMN_INDEXES
    + """CREATE INDEX IF NOT EXISTS sourceimages_live_columns ON sourceimages(organization_id, hash)
    INCLUDE (created, format, mimetype) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimage_values_facets
    ON sourceimage_values(organization_id, hash, source, field, type, value_text)
    WHERE type IN ('str', 'array') AND value_text IS NOT NULL;
CREATE INDEX IF NOT EXISTS sourceimage_words_created ON sourceimage_words(created, hash);
"""
)


def statistics_due(db: Database) -> bool:
    """Whether SQLite's planner statistics are missing (for any index of migration 7,
    the last to add one) or were taken when the catalog held under 1/``GROWTH`` of its
    images; False on PostgreSQL (autovacuum analyses) and for small catalogs."""
    if db.dialect != "sqlite":
        return False
    top = db.row("SELECT MAX(rowid) AS n FROM sourceimages")
    images = int(top["n"] or 0) if top else 0  # rowids grow: an upper bound, O(log n)
    if images < MIN_IMAGES:
        return False
    if not db.has_table("sqlite_stat1"):
        return True
    found = db.row(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = 'sourceimages' "
        "AND idx = 'sourceimages_live_columns'"
    )
    if found is None:
        return True
    seen = int(str(found["stat"]).split()[0])
    return images > seen * GROWTH


def refresh_statistics(db: Database) -> bool:
    """Run a bounded ``ANALYZE`` (``ANALYSIS_LIMIT`` rows per index) when
    ``statistics_due``; whether it ran. A catalog that refuses writes is left as it is
    (logged): statistics only make plans better."""
    if not statistics_due(db):
        return False
    from webapp.catalog.errors import CatalogBusy, CatalogFull, CatalogReadOnly

    try:
        with db.transaction():
            db.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
            try:
                db.execute("ANALYZE")
            finally:
                db.execute("PRAGMA analysis_limit=0")
    except (CatalogBusy, CatalogFull, CatalogReadOnly) as exc:
        log.warning("catalog statistics not refreshed: %s", exc)
        return False
    return True
