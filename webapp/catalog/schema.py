"""The catalog's SQLite schema, applied idempotently at start-up.

Times are ISO 8601 UTC strings (``2019-12-10T11:13:24+00:00``), which sort as text.
JSON columns hold compact JSON text.
"""

_SCHEMA = """
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
-- Per-column indexes for search filters and sorts. deleted_at rides along so that counting
-- a filter's live matches reads only the index, never the (large) table row. They replace
-- the earlier (organization_id, column) indexes, dropped here once.
DROP INDEX IF EXISTS sourceimages_size;
DROP INDEX IF EXISTS sourceimages_width;
DROP INDEX IF EXISTS sourceimages_height;
DROP INDEX IF EXISTS sourceimages_name;
DROP INDEX IF EXISTS sourceimages_format;
DROP INDEX IF EXISTS sourceimages_mimetype;
CREATE INDEX IF NOT EXISTS sourceimages_size_live
    ON sourceimages(organization_id, size, deleted_at);
CREATE INDEX IF NOT EXISTS sourceimages_width_live
    ON sourceimages(organization_id, width, deleted_at);
CREATE INDEX IF NOT EXISTS sourceimages_height_live
    ON sourceimages(organization_id, height, deleted_at);
CREATE INDEX IF NOT EXISTS sourceimages_name_live
    ON sourceimages(organization_id, name, deleted_at);
CREATE INDEX IF NOT EXISTS sourceimages_format_live
    ON sourceimages(organization_id, format, deleted_at);
CREATE INDEX IF NOT EXISTS sourceimages_mimetype_live
    ON sourceimages(organization_id, mimetype, deleted_at);
-- Covering for "is this image live?": search filters probe it once per matching image
-- without reading the (large) table row.
CREATE INDEX IF NOT EXISTS sourceimages_live ON sourceimages(organization_id, hash, deleted_at);
-- Search index (docs/search.md): one row per searchable scalar of an image, kept in sync
-- with sourceimages by the triggers below, so every write path (and every transaction)
-- updates it. source: 'user' (field = name, type = its prefix type, one row per array
-- element), 'dynamic'/'static' (field = dotted JSON path, type 'str'/'num'/'bool'),
-- 'name' (the file name, for name_text). value_num holds numbers, 0/1 for booleans
-- and julianday() of user dates; value_text holds strings.
CREATE TABLE IF NOT EXISTS sourceimage_values (
    id INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    field TEXT NOT NULL,
    type TEXT NOT NULL,
    value_text TEXT,
    value_num                           -- no affinity: 64-bit integers stay exact
);
CREATE INDEX IF NOT EXISTS sourceimage_values_num
    ON sourceimage_values(organization_id, source, field, type, value_num, hash)
    WHERE value_num IS NOT NULL;
CREATE INDEX IF NOT EXISTS sourceimage_values_text
    ON sourceimage_values(organization_id, source, field, type, value_text, hash)
    WHERE value_text IS NOT NULL;
CREATE INDEX IF NOT EXISTS sourceimage_values_image
    ON sourceimage_values(organization_id, hash, source, field);
-- Layout before sourceimage_keys (an FTS5 table keyed by sourceimage_values ids only):
-- dropped, and its index rows rebuilt below with ids that carry the image key.
DROP TRIGGER IF EXISTS sourceimage_values_fts_insert;
DROP TRIGGER IF EXISTS sourceimage_values_fts_delete;
DELETE FROM sourceimage_values
    WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sourceimage_fts');
DROP TABLE IF EXISTS sourceimage_fts;
-- An integer key per image (stable: an explicit INTEGER PRIMARY KEY survives VACUUM), with
-- the columns a word search needs to count live matches and page them in created order
-- without reading sourceimages. Kept by the triggers below.
CREATE TABLE IF NOT EXISTS sourceimage_keys (
    id INTEGER PRIMARY KEY,
    organization_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    created TEXT NOT NULL,
    deleted_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sourceimage_keys_image
    ON sourceimage_keys(organization_id, hash);
CREATE INDEX IF NOT EXISTS sourceimage_keys_created
    ON sourceimage_keys(organization_id, created, hash) WHERE deleted_at IS NULL;
-- Small enough to stay cached: "is key k live?" for every word match.
CREATE INDEX IF NOT EXISTS sourceimage_keys_live ON sourceimage_keys(id) WHERE deleted_at IS NULL;
INSERT INTO sourceimage_keys (organization_id, hash, created, deleted_at)
SELECT organization_id, hash, created, deleted_at FROM sourceimages AS s
WHERE NOT EXISTS (SELECT 1 FROM sourceimage_keys AS k
                  WHERE k.organization_id = s.organization_id AND k.hash = s.hash);
-- Words of text:/array_text: user fields and of names (contentless: the text lives in
-- sourceimage_values). rowid = the sourceimage_values id = (image key << 32) + n, so a
-- match names its image without a lookup; ``scope`` holds one token naming organization,
-- source, type and field (_SCOPE), matched together with the words.
CREATE VIRTUAL TABLE IF NOT EXISTS sourceimage_words USING fts5(
    scope,
    words,
    content='',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS sourceimage_values_words_insert AFTER INSERT ON sourceimage_values
WHEN NEW.type IN ('text', 'array_text')
BEGIN
    INSERT INTO sourceimage_words(rowid, scope, words)
        VALUES (NEW.id, {scope_new}, NEW.value_text);
END;
CREATE TRIGGER IF NOT EXISTS sourceimage_values_words_delete AFTER DELETE ON sourceimage_values
WHEN OLD.type IN ('text', 'array_text')
BEGIN
    INSERT INTO sourceimage_words(sourceimage_words, rowid, scope, words)
        VALUES ('delete', OLD.id, {scope_old}, OLD.value_text);
END;
-- Re-created at every start-up so that databases of an older layout get these bodies.
DROP TRIGGER IF EXISTS sourceimages_search_insert;
DROP TRIGGER IF EXISTS sourceimages_search_update;
DROP TRIGGER IF EXISTS sourceimages_search_delete;
CREATE TRIGGER IF NOT EXISTS sourceimages_search_insert AFTER INSERT ON sourceimages
BEGIN
    INSERT INTO sourceimage_keys (organization_id, hash, created, deleted_at)
        VALUES (NEW.organization_id, NEW.hash, NEW.created, NEW.deleted_at);
{flatten_new}
END;
CREATE TRIGGER IF NOT EXISTS sourceimages_search_update
AFTER UPDATE OF name, user_metadata, dynamic_metadata, static_metadata ON sourceimages
BEGIN
    DELETE FROM sourceimage_values
        WHERE organization_id = OLD.organization_id AND hash = OLD.hash;
{flatten_new}
END;
CREATE TRIGGER IF NOT EXISTS sourceimages_search_delete AFTER DELETE ON sourceimages
BEGIN
    DELETE FROM sourceimage_values
        WHERE organization_id = OLD.organization_id AND hash = OLD.hash;
    DELETE FROM sourceimage_keys WHERE organization_id = OLD.organization_id AND hash = OLD.hash;
END;
DROP TRIGGER IF EXISTS sourceimages_keys_update;
CREATE TRIGGER sourceimages_keys_update
AFTER UPDATE OF organization_id, hash, created, deleted_at ON sourceimages
BEGIN
    UPDATE sourceimage_keys SET organization_id = NEW.organization_id, hash = NEW.hash,
        created = NEW.created, deleted_at = NEW.deleted_at
    WHERE organization_id = OLD.organization_id AND hash = OLD.hash;
END;
-- Rows written before the search index existed (idempotent: every image has a name row).
{flatten_backfill};
-- Facet counts of live images (docs/search.md): per organization, facet ('format',
-- 'mimetype', 'user:str:<name>', 'user:array:<name>') and value, the number of live
-- images holding it (an image counts once per value). Answers facets and totals of
-- unfiltered searches without reading every image; kept by the triggers below in the
-- same transaction as the write. Rows reaching 0 are removed.
CREATE TABLE IF NOT EXISTS sourceimage_facet_counts (
    organization_id TEXT NOT NULL,
    facet TEXT NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (organization_id, facet, value)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS sourceimages_facets_insert AFTER INSERT ON sourceimages
WHEN NEW.deleted_at IS NULL
BEGIN
{facets_add_new}
END;
CREATE TRIGGER IF NOT EXISTS sourceimages_facets_update
AFTER UPDATE OF organization_id, format, mimetype, user_metadata, deleted_at ON sourceimages
WHEN OLD.deleted_at IS NULL OR NEW.deleted_at IS NULL
BEGIN
{facets_remove_old}
{facets_add_new}
END;
CREATE TRIGGER IF NOT EXISTS sourceimages_facets_delete AFTER DELETE ON sourceimages
WHEN OLD.deleted_at IS NULL
BEGIN
{facets_remove_old}
END;
-- Counts of catalogs from before the table (idempotent: once any live image exists, the
-- table holds its format; the constant NOT EXISTS is evaluated once, before the scan).
{facets_backfill};
CREATE TABLE IF NOT EXISTS stacks (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,           -- JSON as stored by stacks.stack (canonical)
    created TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);
"""


# The rows of sourceimage_values for the image row ``{x}`` (NEW in triggers, ``s`` in
# the backfill). User keys are ``[type:]name``; array values give one row per element.
_FLATTEN = """
INSERT INTO sourceimage_values
    (id, organization_id, hash, source, field, type, value_text, value_num)
SELECT (k.id << 32) + row_number() OVER (), f.*
FROM sourceimage_keys AS k, (
SELECT {x}.organization_id, {x}.hash, 'name', 'name', 'text', {x}.name, NULL
UNION ALL
SELECT {x}.organization_id, {x}.hash, 'user',
    CASE WHEN instr(u.key, ':') THEN substr(u.key, instr(u.key, ':') + 1) ELSE u.key END,
    CASE WHEN instr(u.key, ':') THEN substr(u.key, 1, instr(u.key, ':') - 1) ELSE 'str' END,
    CASE WHEN e.type = 'text' THEN e.value END,
    CASE WHEN e.type IN ('integer', 'real') THEN e.value
         WHEN e.type = 'text' AND u.key LIKE 'date:%' THEN julianday(e.value) END
FROM json_each({x}.user_metadata) AS u,
    json_each(CASE WHEN u.type = 'array' THEN u.value ELSE json_array(u.value) END) AS e
UNION ALL
SELECT {x}.organization_id, {x}.hash, m.source, replace(substr(t.fullkey, 3), '"', ''),
    CASE t.type WHEN 'text' THEN 'str' WHEN 'integer' THEN 'num' WHEN 'real' THEN 'num'
        ELSE 'bool' END,
    CASE WHEN t.type = 'text' THEN t.value END,
    CASE WHEN t.type IN ('integer', 'real') THEN t.value WHEN t.type = 'true' THEN 1
         WHEN t.type = 'false' THEN 0 END
FROM (SELECT 'dynamic' AS source, {x}.dynamic_metadata AS doc
      UNION ALL SELECT 'static', {x}.static_metadata) AS m,
    json_tree(m.doc) AS t
WHERE t.type IN ('text', 'integer', 'real', 'true', 'false')) AS f
WHERE k.organization_id = {x}.organization_id AND k.hash = {x}.hash"""

# The scope token of index row ``{x}`` (sourceimage_words.scope); ``scope_token`` is the same
# in Python. Hex keeps it one token the tokenizer leaves alone (over 64 characters, so the
# porter stemmer passes it through).
_SCOPE = (
    "'s' || lower(hex({x}.organization_id || ' ' || {x}.source || ' ' || {x}.type || ' ' "
    "|| {x}.field)) || '0'"
)


def scope_token(organization_id: str, source: str, value_type: str, name: str) -> str:
    """The ``scope`` token of the word rows of one organization's field (as _SCOPE)."""
    return "s" + f"{organization_id} {source} {value_type} {name}".encode().hex() + "0"


# The type and name of user key ``u.key`` (``[type:]name``, as in _FLATTEN).
_KEY_TYPE = (
    "CASE WHEN instr(u.key, ':') THEN substr(u.key, 1, instr(u.key, ':') - 1) ELSE 'str' END"
)
_KEY_NAME = "CASE WHEN instr(u.key, ':') THEN substr(u.key, instr(u.key, ':') + 1) ELSE u.key END"
# The user facet values of image row ``{x}``: strings of str/array fields (the rows the
# facet query of sourceimage_values counts), as (facet, value) columns.
_USER_FACETS = f"""
SELECT 'user:' || ({_KEY_TYPE}) || ':' || ({_KEY_NAME}), e.value
FROM {{from_}}json_each({{x}}.user_metadata) AS u,
    json_each(CASE WHEN u.type = 'array' THEN u.value ELSE json_array(u.value) END) AS e
WHERE e.type = 'text' AND ({_KEY_TYPE}) IN ('str', 'array'){{where}}"""
# The distinct (facet, value) pairs of image row ``{x}`` (NEW or OLD in triggers).
_FACET_VALUES = (
    "SELECT 'format' AS facet, {x}.format AS value UNION SELECT 'mimetype', {x}.mimetype UNION"
    + _USER_FACETS.replace("{from_}", "").replace("{where}", "")
)
_FACETS_ADD = """
INSERT INTO sourceimage_facet_counts (organization_id, facet, value, count)
SELECT NEW.organization_id, facet, value, 1 FROM ({values})
WHERE NEW.deleted_at IS NULL
ON CONFLICT (organization_id, facet, value) DO UPDATE SET count = count + 1;""".replace(
    "{values}", _FACET_VALUES.replace("{x}", "NEW")
)
_FACETS_REMOVE = """
UPDATE sourceimage_facet_counts SET count = count - 1
WHERE OLD.deleted_at IS NULL AND organization_id = OLD.organization_id
    AND (facet, value) IN ({values});
DELETE FROM sourceimage_facet_counts
WHERE OLD.deleted_at IS NULL AND organization_id = OLD.organization_id AND count <= 0
    AND (facet, value) IN ({values});""".replace("{values}", _FACET_VALUES.replace("{x}", "OLD"))
_EMPTY = "s.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM sourceimage_facet_counts)"
_FACETS_BACKFILL = f"""
INSERT INTO sourceimage_facet_counts (organization_id, facet, value, count)
SELECT organization_id, facet, value, COUNT(*) FROM (
    SELECT s.organization_id, s.hash, 'format' AS facet, s.format AS value
    FROM sourceimages AS s WHERE {_EMPTY}
    UNION SELECT s.organization_id, s.hash, 'mimetype', s.mimetype FROM sourceimages AS s
    WHERE {_EMPTY}
    UNION SELECT s.organization_id, s.hash, {
    _USER_FACETS.replace("{from_}", "sourceimages AS s, ")
    .replace("{x}", "s")
    .replace("{where}", " AND " + _EMPTY)
    .split("SELECT", 1)[1]
})
WHERE true
GROUP BY organization_id, facet, value"""

SCHEMA = _SCHEMA.replace("{scope_new}", _SCOPE.format(x="NEW")).replace(
    "{scope_old}", _SCOPE.format(x="OLD")
)
SCHEMA = SCHEMA.replace("{flatten_new}", _FLATTEN.format(x="NEW") + ";").replace(
    "{flatten_backfill}",
    # The update trigger re-indexes a row when its name is assigned, even to itself.
    "UPDATE sourceimages SET name = name WHERE NOT EXISTS (SELECT 1 FROM sourceimage_values"
    " AS v WHERE v.organization_id = sourceimages.organization_id"
    " AND v.hash = sourceimages.hash)",
)
SCHEMA = (
    SCHEMA.replace("{facets_add_new}", _FACETS_ADD)
    .replace("{facets_remove_old}", _FACETS_REMOVE)
    .replace("{facets_backfill}", _FACETS_BACKFILL)
)
