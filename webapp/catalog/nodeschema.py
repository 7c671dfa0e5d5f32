"""Schema version 6 (both dialects): what several nodes sharing one catalog agree on.

* ``render_generations``: a counter per purged scope of an organization's renders — a
  stack (``name`` = the stack, ``dynamic``, or ``*`` for every stack) or an image
  (``name`` = its hash). Each node folds the counters that apply to a render into that
  render's cache key (webapp/catalog/purges.py), so a purge on one node makes every
  node's cached copy unreachable. A row exists only once something was purged.
* ``blob_deletions``: blobs a collection is deleting right now, so an upload of the same
  bytes on any node writes them again after the delete (webapp/catalog/blobdeletions.py).
* ``service_secrets``: secrets every node must share (the JWT signing secret), made once
  by whichever node needs one first.

The SQL is the same for SQLite and PostgreSQL.
"""

from __future__ import annotations

NODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS render_generations (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,                -- 'stack' or 'image'
    name TEXT NOT NULL,                 -- stack name, 'dynamic', '*', or an image hash
    generation INTEGER NOT NULL,        -- 1 after the first purge, +1 per purge
    PRIMARY KEY (organization_id, scope, name)
);
CREATE TABLE IF NOT EXISTS blob_deletions (
    blob_key TEXT PRIMARY KEY,          -- a blob `cropstack gc` is deleting now
    started DOUBLE PRECISION NOT NULL   -- unix seconds
);
CREATE TABLE IF NOT EXISTS service_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created TEXT NOT NULL
);
"""
