"""Schema of the usage figures behind ``GET /stats`` and ``GET /billing`` (migration 4).

Two tables, one row per organization and UTC day (``YYYY-MM-DD`` text, which sorts):

- ``usage_deliveries``: what render URLs delivered that day (``renders``, of which
  ``cache_hits`` came from the render cache, and ``bytes`` of image bodies). Each web
  worker counts in memory and adds its counts now and then (``Usage.add_deliveries``, an
  UPSERT that adds), so several workers and nodes on one database sum up and no render
  writes the catalog.
- ``usage_storage``: the organization's live source images at the end of that day (or
  now, for today): ``bytes`` (sum of their sizes) and ``files`` (their number). Kept by
  triggers on ``sourceimages`` in the writing transaction, so every write path (upload,
  delete, restore, copy, purge) counts: a change adds its delta to today's row, which
  starts from the latest earlier row. A day without a change has no row (its value is the
  latest earlier row's). The migration writes today's row for every organization from the
  images it holds.

No foreign keys: a trigger that fires while an organization's images are deleted with it
must not trip over the organization's absence; rows of a deleted organization (its id is
a UUID, never reused) are inert. Both scripts are idempotent (a catalog whose
``schema_migrations`` was lost runs them again).
"""

from __future__ import annotations

_SQLITE_ADD = """
INSERT INTO usage_storage (organization_id, day, bytes, files)
SELECT {x}.organization_id, date('now'),
    COALESCE((SELECT u.bytes FROM usage_storage AS u
              WHERE u.organization_id = {x}.organization_id ORDER BY u.day DESC LIMIT 1), 0)
        {sign} {x}.size,
    COALESCE((SELECT u.files FROM usage_storage AS u
              WHERE u.organization_id = {x}.organization_id ORDER BY u.day DESC LIMIT 1), 0)
        {sign} 1
WHERE {x}.deleted_at IS NULL
ON CONFLICT (organization_id, day) DO UPDATE SET
    bytes = usage_storage.bytes {sign} {x}.size, files = usage_storage.files {sign} 1;"""

#: SQLite: the tables, the triggers, and today's row of every organization.
SQLITE_USAGE = f"""
CREATE TABLE IF NOT EXISTS usage_deliveries (
    organization_id TEXT NOT NULL,
    day TEXT NOT NULL,
    renders INTEGER NOT NULL DEFAULT 0,
    cache_hits INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, day)
);
CREATE TABLE IF NOT EXISTS usage_storage (
    organization_id TEXT NOT NULL,
    day TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    PRIMARY KEY (organization_id, day)
);
INSERT INTO usage_storage (organization_id, day, bytes, files)
SELECT o.id, date('now'), COALESCE(sum(s.size), 0), count(s.hash)
FROM organizations AS o
LEFT JOIN sourceimages AS s ON s.organization_id = o.id AND s.deleted_at IS NULL
GROUP BY o.id
ON CONFLICT (organization_id, day) DO NOTHING;
CREATE TRIGGER IF NOT EXISTS sourceimages_usage_insert AFTER INSERT ON sourceimages
BEGIN
{_SQLITE_ADD.format(x="NEW", sign="+")}
END;
CREATE TRIGGER IF NOT EXISTS sourceimages_usage_delete AFTER DELETE ON sourceimages
BEGIN
{_SQLITE_ADD.format(x="OLD", sign="-")}
END;
CREATE TRIGGER IF NOT EXISTS sourceimages_usage_update
AFTER UPDATE OF organization_id, size, deleted_at ON sourceimages
BEGIN
{_SQLITE_ADD.format(x="OLD", sign="-")}
{_SQLITE_ADD.format(x="NEW", sign="+")}
END;
"""

#: PostgreSQL: the same tables (BIGINT counts), one trigger function.
PG_USAGE = """
CREATE TABLE IF NOT EXISTS usage_deliveries (
    organization_id TEXT NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    renders BIGINT NOT NULL DEFAULT 0,
    cache_hits BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, day)
);
CREATE TABLE IF NOT EXISTS usage_storage (
    organization_id TEXT NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    bytes BIGINT NOT NULL,
    files BIGINT NOT NULL,
    PRIMARY KEY (organization_id, day)
);
INSERT INTO usage_storage (organization_id, day, bytes, files)
SELECT o.id, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
    COALESCE(sum(s.size), 0), count(s.hash)
FROM organizations AS o
LEFT JOIN sourceimages AS s ON s.organization_id = o.id AND s.deleted_at IS NULL
GROUP BY o.id
ON CONFLICT (organization_id, day) DO NOTHING;
CREATE OR REPLACE FUNCTION cropstack_usage_storage_add(org TEXT, delta_bytes BIGINT,
                                                       delta_files BIGINT)
RETURNS void LANGUAGE sql AS $f$
    INSERT INTO usage_storage (organization_id, day, bytes, files)
    SELECT org, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
        COALESCE((SELECT u.bytes FROM usage_storage AS u
                  WHERE u.organization_id = org ORDER BY u.day DESC LIMIT 1), 0) + delta_bytes,
        COALESCE((SELECT u.files FROM usage_storage AS u
                  WHERE u.organization_id = org ORDER BY u.day DESC LIMIT 1), 0) + delta_files
    ON CONFLICT (organization_id, day) DO UPDATE SET
        bytes = usage_storage.bytes + delta_bytes, files = usage_storage.files + delta_files
$f$;
CREATE OR REPLACE FUNCTION cropstack_usage_storage() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
        PERFORM cropstack_usage_storage_add(OLD.organization_id, -OLD.size, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        PERFORM cropstack_usage_storage_add(NEW.organization_id, NEW.size, 1);
    END IF;
    RETURN NULL;
END
$f$;
DROP TRIGGER IF EXISTS sourceimages_usage_storage ON sourceimages;
CREATE TRIGGER sourceimages_usage_storage
    AFTER INSERT OR DELETE OR UPDATE OF organization_id, size, deleted_at
    ON sourceimages FOR EACH ROW EXECUTE FUNCTION cropstack_usage_storage();
"""
