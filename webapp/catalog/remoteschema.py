"""Schema of remote images (migration 2, both dialects): which image a remote URL became.

One row per (organization, URL). ``url_key`` is the SHA-256 hex of the URL: URLs may be
2 KB and more, longer than a PostgreSQL b-tree entry may be, so the key is its digest.
``hash`` names a ``sourceimages`` row (no foreign key: the image may be soft-deleted or
purged, and the render then fetches again). Times are ISO 8601 UTC text as elsewhere;
``expires`` NULL means the image is never fetched again (rokka's behaviour).
"""

REMOTE_SCHEMA_SQLITE = """
CREATE TABLE IF NOT EXISTS remote_images (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url_key TEXT NOT NULL,              -- sha256 hex of url
    url TEXT NOT NULL,
    hash TEXT NOT NULL,                 -- the sourceimages hash the URL renders as
    fetched TEXT NOT NULL,
    expires TEXT,                       -- NULL: never fetched again
    PRIMARY KEY (organization_id, url_key)
);
CREATE INDEX IF NOT EXISTS remote_images_hash ON remote_images(organization_id, hash);
"""

REMOTE_SCHEMA_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS remote_images (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url_key TEXT COLLATE "C" NOT NULL,
    url TEXT NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    fetched TEXT NOT NULL,
    expires TEXT,
    PRIMARY KEY (organization_id, url_key)
);
CREATE INDEX IF NOT EXISTS remote_images_hash ON remote_images(organization_id, hash);
"""
