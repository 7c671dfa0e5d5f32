"""The catalog's SQLite schema, applied idempotently at start-up.

Times are ISO 8601 UTC strings (``2019-12-10T11:13:24+00:00``), which sort as text.
JSON columns hold compact JSON text.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS organizations (
    id TEXT PRIMARY KEY,                -- UUID
    name TEXT NOT NULL UNIQUE,          -- [a-z0-9-], not a reserved API path
    display_name TEXT NOT NULL,
    billing_email TEXT NOT NULL,
    master_organization TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    signing_keys TEXT NOT NULL DEFAULT '[]',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,                -- UUID
    email TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,                -- UUID, public
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,      -- sha256 hex of the secret (never stored itself)
    comment TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    roles TEXT NOT NULL,                -- JSON array of role names
    active INTEGER NOT NULL DEFAULT 1,
    comment TEXT,
    created TEXT NOT NULL,
    last_access TEXT,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user ON memberships(user_id);
CREATE TABLE IF NOT EXISTS sourceimages (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,                 -- 40 hex
    short_hash TEXT NOT NULL,           -- prefix of hash, >= 6, unique in the org, fixed
    binary_hash TEXT NOT NULL,          -- sha1 hex of the bytes (rokka)
    blob_key TEXT NOT NULL,             -- sha256 hex of the bytes (storage key)
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    mimetype TEXT NOT NULL,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    user_metadata TEXT NOT NULL DEFAULT '{}',
    dynamic_metadata TEXT NOT NULL DEFAULT '{}',
    static_metadata TEXT NOT NULL DEFAULT '{}',
    opaque INTEGER NOT NULL DEFAULT 1,
    animated INTEGER NOT NULL DEFAULT 0,
    protected INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    deleted_at TEXT,                    -- NULL = live, else the time of the soft delete
    PRIMARY KEY (organization_id, hash)
);
CREATE INDEX IF NOT EXISTS sourceimages_binary ON sourceimages(organization_id, binary_hash);
CREATE INDEX IF NOT EXISTS sourceimages_created ON sourceimages(organization_id, created, hash);
CREATE INDEX IF NOT EXISTS sourceimages_blob ON sourceimages(blob_key);
CREATE UNIQUE INDEX IF NOT EXISTS sourceimages_short
    ON sourceimages(organization_id, short_hash);
CREATE INDEX IF NOT EXISTS sourceimages_deleted ON sourceimages(organization_id, deleted_at);
CREATE TABLE IF NOT EXISTS stacks (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,           -- JSON as stored by stacks.stack (canonical)
    created TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);
"""
