"""The catalog's PostgreSQL schema (migration 1; later changes are new migrations).

The same tables and columns as SQLite (schema.py), so one set of queries serves both:
times are ISO 8601 UTC text, JSON columns hold JSON text, flags are 0/1 ``SMALLINT``.
Text columns that are sorted or compared by range use ``COLLATE "C"`` so that order is
byte order, as in SQLite, whatever the database's default collation.

The search index (``sourceimage_values``) is written by the catalog in the transaction
that writes the image (``PostgresDatabase.index_image``); word search uses PostgreSQL's
text search: a stored ``tsvector`` per text value under the ``cropstack_words``
configuration (English Snowball stemming without a stop-word list, so every word can be
searched, as with SQLite's porter tokenizer) and a GIN index. Punctuation separates
words (as in SQLite's unicode61 tokenizer) before PostgreSQL's parser reads the text, so
``50%_off.png`` holds the words 50, off and png there too.
"""

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    billing_email TEXT NOT NULL,
    master_organization TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    signing_keys TEXT NOT NULL DEFAULT '[]',
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    comment TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
CREATE TABLE IF NOT EXISTS memberships (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    roles TEXT NOT NULL,
    active SMALLINT NOT NULL DEFAULT 1,
    comment TEXT,
    created TEXT NOT NULL,
    last_access TEXT,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_user ON memberships(user_id);
CREATE TABLE IF NOT EXISTS sourceimages (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    hash TEXT COLLATE "C" NOT NULL,
    short_hash TEXT COLLATE "C" NOT NULL,
    binary_hash TEXT COLLATE "C" NOT NULL,
    blob_key TEXT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    format TEXT COLLATE "C" NOT NULL,
    mimetype TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    user_metadata TEXT NOT NULL DEFAULT '{}',
    dynamic_metadata TEXT NOT NULL DEFAULT '{}',
    static_metadata TEXT NOT NULL DEFAULT '{}',
    opaque SMALLINT NOT NULL DEFAULT 1,
    animated SMALLINT NOT NULL DEFAULT 0,
    protected SMALLINT NOT NULL DEFAULT 0,
    locked SMALLINT NOT NULL DEFAULT 0,
    created TEXT COLLATE "C" NOT NULL,
    deleted_at TEXT COLLATE "C",
    PRIMARY KEY (organization_id, hash)
);
CREATE INDEX IF NOT EXISTS sourceimages_binary ON sourceimages(organization_id, binary_hash);
CREATE INDEX IF NOT EXISTS sourceimages_created ON sourceimages(organization_id, created, hash);
CREATE INDEX IF NOT EXISTS sourceimages_blob ON sourceimages(blob_key);
CREATE UNIQUE INDEX IF NOT EXISTS sourceimages_short ON sourceimages(organization_id, short_hash);
CREATE INDEX IF NOT EXISTS sourceimages_deleted ON sourceimages(organization_id, deleted_at);
CREATE INDEX IF NOT EXISTS sourceimages_size_live ON sourceimages(organization_id, size)
    WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimages_width_live ON sourceimages(organization_id, width)
    WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimages_height_live ON sourceimages(organization_id, height)
    WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimages_name_live ON sourceimages(organization_id, name)
    WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimages_format_live ON sourceimages(organization_id, format)
    WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimages_mimetype_live ON sourceimages(organization_id, mimetype)
    WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sourceimages_created_live
    ON sourceimages(organization_id, created, hash) WHERE deleted_at IS NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_ts_dict WHERE dictname = 'cropstack_stem') THEN
        CREATE TEXT SEARCH DICTIONARY cropstack_stem (TEMPLATE = snowball, Language = english);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'cropstack_words') THEN
        CREATE TEXT SEARCH CONFIGURATION cropstack_words (COPY = pg_catalog.english);
        ALTER TEXT SEARCH CONFIGURATION cropstack_words
            ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
            WITH cropstack_stem;
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS sourceimage_values (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    source TEXT NOT NULL,
    field TEXT NOT NULL,
    type TEXT NOT NULL,
    value_text TEXT COLLATE "C",
    value_num NUMERIC,
    words TSVECTOR GENERATED ALWAYS AS (
        CASE WHEN type IN ('text', 'array_text')
        THEN to_tsvector(
            'cropstack_words'::regconfig,
            regexp_replace(coalesce(value_text, ''), '[[:punct:][:space:]]+', ' ', 'g')
        ) END
    ) STORED,
    FOREIGN KEY (organization_id, hash) REFERENCES sourceimages(organization_id, hash)
        ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sourceimage_values_num
    ON sourceimage_values(organization_id, source, field, type, value_num, hash)
    WHERE value_num IS NOT NULL;
CREATE INDEX IF NOT EXISTS sourceimage_values_text
    ON sourceimage_values(organization_id, source, field, type, value_text, hash)
    WHERE value_text IS NOT NULL;
CREATE INDEX IF NOT EXISTS sourceimage_values_image
    ON sourceimage_values(organization_id, hash, source, field);
CREATE INDEX IF NOT EXISTS sourceimage_values_words
    ON sourceimage_values USING GIN (words);
-- Facet counts of live images, as on SQLite (schema.py): per organization, facet
-- ('format', 'mimetype', 'user:str:<name>', 'user:array:<name>') and value, the number of
-- live images holding it (once per image and value), kept by a trigger in the writing
-- transaction; rows reaching 0 are removed. Unfiltered searches read totals and facets here.
CREATE TABLE IF NOT EXISTS sourceimage_facet_counts (
    organization_id TEXT NOT NULL,
    facet TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (organization_id, facet, value)
);
CREATE OR REPLACE FUNCTION cropstack_facet_values(format TEXT, mimetype TEXT, metadata TEXT)
RETURNS TABLE (facet TEXT, value TEXT) LANGUAGE sql IMMUTABLE AS $f$
    SELECT 'format', format
    UNION SELECT 'mimetype', mimetype
    UNION SELECT 'user:' || k.kind || ':' || k.name, e.value #>> '{}'
    FROM jsonb_each(metadata::jsonb) AS u
    CROSS JOIN LATERAL (SELECT
        CASE WHEN position(':' IN u.key) > 0 THEN split_part(u.key, ':', 1) ELSE 'str' END,
        CASE WHEN position(':' IN u.key) > 0 THEN substr(u.key, position(':' IN u.key) + 1)
             ELSE u.key END) AS k (kind, name)
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(u.value) = 'array' THEN u.value ELSE jsonb_build_array(u.value) END
    ) AS e (value)
    WHERE jsonb_typeof(e.value) = 'string' AND k.kind IN ('str', 'array')
$f$;
CREATE OR REPLACE FUNCTION cropstack_facet_counts() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
        UPDATE sourceimage_facet_counts AS c SET count = c.count - 1
        FROM cropstack_facet_values(OLD.format, OLD.mimetype, OLD.user_metadata) AS v
        WHERE c.organization_id = OLD.organization_id AND c.facet = v.facet
            AND c.value = v.value;
        DELETE FROM sourceimage_facet_counts AS c
        USING cropstack_facet_values(OLD.format, OLD.mimetype, OLD.user_metadata) AS v
        WHERE c.organization_id = OLD.organization_id AND c.facet = v.facet
            AND c.value = v.value AND c.count <= 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        INSERT INTO sourceimage_facet_counts (organization_id, facet, value, count)
        SELECT NEW.organization_id, v.facet, v.value, 1
        FROM cropstack_facet_values(NEW.format, NEW.mimetype, NEW.user_metadata) AS v
        ON CONFLICT (organization_id, facet, value)
        DO UPDATE SET count = sourceimage_facet_counts.count + 1;
    END IF;
    RETURN NULL;
END
$f$;
DROP TRIGGER IF EXISTS sourceimages_facet_counts ON sourceimages;
CREATE TRIGGER sourceimages_facet_counts
    AFTER INSERT OR DELETE
        OR UPDATE OF organization_id, format, mimetype, user_metadata, deleted_at
    ON sourceimages FOR EACH ROW EXECUTE FUNCTION cropstack_facet_counts();
CREATE TABLE IF NOT EXISTS stacks (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    definition TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (organization_id, name)
);
"""
