"""Schema of source image aliases (migration 3), one script per database dialect.

An alias is an organization's stable name for one of its images (rokka's "source image
aliases": logos, mail footers). ``name`` is ``[A-Za-z0-9_]`` and compared byte for byte
(case-sensitive), hence PostgreSQL's ``COLLATE "C"``. ``hash`` is the full hash the alias
points to now; it is not a foreign key, since an image may be deleted (and restored) while
aliases name it, and a render of an alias whose image is gone is a plain 404.
"""

from __future__ import annotations

SQLITE_ALIASES = """
CREATE TABLE IF NOT EXISTS sourceimage_aliases (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);
CREATE INDEX IF NOT EXISTS sourceimage_aliases_hash ON sourceimage_aliases(organization_id, hash);
"""

PG_ALIASES = """
CREATE TABLE IF NOT EXISTS sourceimage_aliases (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    created TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (organization_id, name)
);
CREATE INDEX IF NOT EXISTS sourceimage_aliases_hash ON sourceimage_aliases(organization_id, hash);
"""
