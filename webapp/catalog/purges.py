"""Purge generations: how a render cache purge on one node reaches every node.

Each node keeps its own render cache (webapp/rendercache.py). A purge
(``DELETE /stacks/{org}/{stack}/cache``, ``DELETE /sourceimages/{org}/{hash}/cache``)
removes the files of the node that answers it, and also counts one more *generation* of
the purged scope in the catalog (table ``render_generations``, nodeschema.py). Every
render reads the generations that apply to it — its stack's, the organization-wide
``*`` one and its image's — in one primary-key query, and folds them into its cache
key and ETag. So after a purge on any node, every node's next request for that render
misses its cache, renders again, and answers a new ETag; the old files become
unreachable and leave with the least recently used.

Nothing was ever purged: no row, an empty generation, keys as before.
"""

from __future__ import annotations

from webapp.catalog.database import Database

#: The stack scope a purge of ``*`` (every stack, ``dynamic`` included) counts in.
EVERY_STACK = "*"

_BUMP = (
    "INSERT INTO render_generations (organization_id, scope, name, generation) "
    "VALUES (?, ?, ?, 1) ON CONFLICT (organization_id, scope, name) "
    "DO UPDATE SET generation = render_generations.generation + 1"
)


class RenderPurges:
    """The purge generations of the catalog (``webapp.catalog.interface.RenderPurges``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def generation(self, org_id: str, stack: str, image_hash: str) -> str:
        """The purge generations that apply to a render of ``image_hash`` through
        ``stack`` (the stack's, every stack's and the image's), as one text that changes
        with each of them; empty when none of them was ever purged."""
        rows = self.db.rows(
            "SELECT scope, name, generation FROM render_generations WHERE organization_id = ? "
            "AND ((scope = 'stack' AND name IN (?, ?)) OR (scope = 'image' AND name = ?))",
            (org_id, stack, EVERY_STACK, image_hash),
        )
        parts = sorted(f"{r['scope']}:{r['name']}:{r['generation']}" for r in rows)
        return " ".join(parts)

    def purge_stack(self, org_id: str, stack: str) -> None:
        """Count a purge of every render through ``stack`` (``*``: through every stack)."""
        with self.db.transaction():
            self.db.execute(_BUMP, (org_id, "stack", stack))

    def purge_image(self, org_id: str, image_hash: str) -> None:
        """Count a purge of every render of the image ``image_hash``, through any stack."""
        with self.db.transaction():
            self.db.execute(_BUMP, (org_id, "image", image_hash))
